"""Outputs appear whole or not at all, and their bytes do not depend on temp names."""

import pytest
import torch

from cnn_denoise.atomic import atomic_path, save_torch, write_json


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "m.json"
    write_json(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed midway")
    assert target.read_text() == '{\n  "a": 1\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_torch_files_are_byte_identical_whatever_the_path(tmp_path):
    obj = {"x": torch.arange(10.0)}
    save_torch(tmp_path / "a.pt", obj)
    save_torch(tmp_path / "sub" / "a.pt", obj)
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "sub" / "a.pt").read_bytes()
    assert torch.equal(torch.load(tmp_path / "a.pt", weights_only=True)["x"], obj["x"])
