"""torchrun with 2 CPU processes (gloo) trains the same model as one process, same global batch."""

import os
import subprocess
import sys

import pytest
import torch

from cnn_denoise import model as cnn
from conftest import REPO, write_params_copy

pytestmark = pytest.mark.slow


def test_two_processes_match_one(tmp_path):
    write_params_copy(tmp_path, **{"train.epochs": 3, "train.batch_size": 6, "train.device": "cpu"})
    g = torch.Generator().manual_seed(0)
    for name, q in (("train", 14), ("test", 4)):  # 14: the last global batch is uneven (2 rows)
        x = torch.randn(q, 1, 400, generator=g) * 1e-3
        torch.save({"x": x, "y": 0.5 * x + 1e-4 * torch.randn(q, 1, 400, generator=g)}, tmp_path / f"{name}.pt")
    env = dict(os.environ, CNN_DENOISE_TRACKING="off", OMP_NUM_THREADS="1")
    script = str(REPO / "stages" / "train.py")
    args = [str(tmp_path / "train.pt"), str(tmp_path / "test.pt")]
    one = subprocess.run([sys.executable, script, *args, "one.pt", "one.csv"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", script, *args, "two.pt", "two.csv"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    a = torch.load(tmp_path / "one.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "two.pt", weights_only=True)["state_dict"]
    start = cnn.build([40, 40], [1, 5, 1], seed=0).state_dict()  # params.yaml's model, train.seed 0
    assert all((a[k] - start[k]).abs().max() > 0 for k in a)  # training moved every layer
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-5, atol=1e-7)
    assert (tmp_path / "two.csv").read_text().splitlines()[0] == "epoch,train_l1,test_l1"
