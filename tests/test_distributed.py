"""torchrun with 2 CPU processes (gloo) trains the same model as one process, same global batch."""

import os
import subprocess
import sys

import pytest
import torch
from helpers import REPO, model_settings, write_params_copy
from test_warmstart import bursts

from cnn_denoise.models import model as cnn
from cnn_denoise.recipes import book

pytestmark = pytest.mark.slow

# the recipe's file, on small data: shorter filters, three hidden units, 3 epochs
[(_, GATE)] = book.load(
    "linear-gate", REPO, extra={"model.taps": [9, 1], "model.features": [1, 3, 1], "train.epochs": 3}
)


@pytest.mark.parametrize(
    "recipe", [{}, GATE, {"train.history": "batches"}], ids=["lab-sgd-l1", "lbfgs-snr-linear-start", "history-batches"]
)
def test_two_processes_match_one(tmp_path, recipe):
    write_params_copy(
        tmp_path, **{"train.epochs": 3, "train.batch_size": 6, "train.device": "cpu", **recipe}
    )  # full: 14
    g = torch.Generator().manual_seed(0)
    for seed, (name, q) in enumerate((("train", 14), ("test", 4))):  # 14: the last global batch is uneven (2 rows)
        x = torch.randn(q, 1, 400, generator=g) * 1e-3
        data = (
            bursts(q, 2000, seed)
            if recipe is GATE
            else {"x": x, "y": 0.5 * x + 1e-4 * torch.randn(q, 1, 400, generator=g)}
        )
        torch.save(data, tmp_path / f"{name}.pt")
    # the machine's own kernels (CNN_DENOISE_NUMERICS=native): this holds DDP's sums to one process's at a
    # tolerance; under the pinned ones L-BFGS's line search parts ways at epoch 2 in the linear-gate run
    # (its history 0.8% apart, the weights still within 1e-5): issue 38, not chased yet
    env = dict(os.environ, CNN_DENOISE_TRACKING="off", OMP_NUM_THREADS="1", CNN_DENOISE_NUMERICS="native")
    script = str(REPO / "stages" / "train.py")
    args = [str(tmp_path / "train.pt"), str(tmp_path / "test.pt")]
    one = subprocess.run(
        [sys.executable, script, *args, "one.pt", "one.csv"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert one.returncode == 0, one.stderr
    two = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            script,
            *args,
            "two.pt",
            "two.csv",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    a = torch.load(tmp_path / "one.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "two.pt", weights_only=True)["state_dict"]
    if recipe is not GATE:
        start = cnn.build(model_settings([40, 40], [1, 5, 1]), seed=0).state_dict()  # params.yaml's model, train.seed 0
        assert all((a[k] - start[k]).abs().max() > 0 for k in a)  # training moved every layer
    else:
        assert a["layers.1.H"][0, 1:].abs().max() > 0  # the gate's output weights left 0
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-5, atol=1e-7 * a[k].abs().max().item())
    histories = [(tmp_path / f"{n}.csv").read_text().splitlines() for n in ("one", "two")]
    assert histories[0][0] == histories[1][0] == "epoch,train_l1,test_l1" and len(histories[1]) == 1 + 4
    for row_one, row_two in zip(
        histories[0][1:], histories[1][1:], strict=True
    ):  # the ranks' shares of each batch, added
        assert [float(v) for v in row_two.split(",")] == pytest.approx(
            [float(v) for v in row_one.split(",")], rel=1e-4, abs=1e-8
        )
