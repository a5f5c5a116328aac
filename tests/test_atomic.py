"""Outputs appear whole or not at all, and their bytes do not depend on temp names."""

import pytest
import torch

from cnn_denoise.common import atomic
from cnn_denoise.common.atomic import atomic_path, save_torch, write_json


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


def test_outputs_follow_the_umask(tmp_path):
    """mkstemp/mkdtemp make 0600/0700; the outputs get what open() and mkdir() would give."""
    import os
    import stat

    old = os.umask(0o027)
    try:
        atomic.write_text(tmp_path / "f.txt", "x")
        with atomic.atomic_dir(tmp_path / "d") as d:
            (d / "inside").write_text("y")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f.txt").stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o750


def test_sigterm_is_handled_like_ctrl_c_and_leaves_no_temp(tmp_path):
    """A stage killed with SIGTERM mid-write: exit 130, one line, no output, no temp file."""
    import signal
    import subprocess
    import sys

    script = (
        "import time\n"
        "from cnn_denoise.common.atomic import atomic_path\n"
        "from cnn_denoise.common.errors import run_stage\n"
        "def main():\n"
        f"    with atomic_path({str(tmp_path / 'out.bin')!r}) as tmp:\n"
        "        tmp.write_bytes(b'partial')\n"
        "        print('ready', flush=True)\n"
        "        time.sleep(60)\n"
        "run_stage(main)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and err.strip().startswith("error: interrupted"), err
    assert list(tmp_path.iterdir()) == []


def test_clean_stale_removes_debris_of_killed_runs_only(tmp_path):
    (tmp_path / ".m.pt.ab12.tmp").write_bytes(b"half")
    (tmp_path / ".reports.cd34.tmp").mkdir()
    (tmp_path / ".reports.cd34.tmp" / "x.wav").write_bytes(b"half")
    (tmp_path / ".other.ef56.tmp").write_bytes(b"not ours")
    (tmp_path / "m.pt").write_bytes(b"old")
    atomic.clean_stale(tmp_path / "m.pt", tmp_path / "reports", tmp_path / "missing" / "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.ef56.tmp", "m.pt"]
