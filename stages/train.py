"""train: the CNN of params.yaml (model.*) trained as train.* says (the lab: SGD on the mean L1).

Its MLflow run (params, per-epoch losses, the model) is logged by the evaluate stage, which runs
on this model next and opens the store anyway: a process that imports MLflow and opens its store
costs seconds, as much as a sweep's short training (bench/README.md)."""

from cnn_denoise.common import numerics

numerics.pin()  # before torch and NumPy load: they pick their kernels then (same bits on every machine)

import argparse
import csv
import io
import json
import sys
from pathlib import Path

from cnn_denoise.common.atomic import check_writable, clean_stale, write_text
from cnn_denoise.common.errors import run_stage
from cnn_denoise.common.urls import redact
from cnn_denoise.config import choices, params
from cnn_denoise.lab import synth
from cnn_denoise.lab.dataset import load_split
from cnn_denoise.lab.warmstart import linear_start
from cnn_denoise.models import checkpoint as ckpt
from cnn_denoise.models import model as cnn
from cnn_denoise.scoring.sets import predict
from cnn_denoise.training.fit import (
    calibrate_gain,
    close_distributed,
    deterministic,
    exact_float32,
    fit,
    init_distributed,
    pick_device,
)
from cnn_denoise.training.losses import si_sdr_db
from cnn_denoise.tune.trial import epoch_hook


def history_csv(history: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(history[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: (f"{v:.9g}" if isinstance(v, float) else v) for k, v in row.items()} for row in history)
    return out.getvalue()


def trained_on(p, train_set) -> dict:
    """What the model heard: the speech mix's record (split.json beside the training set), or
    the lab's data: its source and the band its noise was put in."""
    split = Path(train_set).with_name("split.json")
    if split.exists():
        return json.loads(split.read_text()).get("about", {})
    return {"speech": f"the lab's dataset ({redact(p.data.url)})", "kinds": ["band"], "band_hz": list(synth.NOISE_BAND)}


def test_si_sdr(model, test_set) -> dict:
    """The model's mean SI-SDR on its own test set and the noisy input's (dB): enhance says when
    a model makes its own test set worse."""
    out = predict(model.eval(), test_set["x"])
    return {
        "test_si_sdr_db": si_sdr_db(out, test_set["y"]).mean().item(),
        "noisy_si_sdr_db": si_sdr_db(test_set["x"], test_set["y"]).mean().item(),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("train_set")
    parser.add_argument("test_set")
    parser.add_argument("model_out")
    parser.add_argument("history_out", help="per-epoch train/test L1 (CSV, a DVC plot)")
    args = parser.parse_args(argv)
    clean_stale(args.model_out, args.history_out)
    p = params.load()
    check_writable(args.model_out, args.history_out)  # before training, not after
    m, t = p.model, p.train
    device = pick_device(t.device)
    exact_float32()
    deterministic()
    rank = init_distributed(device)  # 0 unless launched by torchrun
    model = cnn.build(m, seed=t.seed)
    train_set = load_split(args.train_set)
    if t.init == choices.LINEAR:
        start = linear_start(model, train_set["x"], train_set["y"])
        if rank == 0:
            print(
                f"train: starting as the {start['taps']}-tap least-squares filter (residual RMS "
                f"{start['residual_rms']:.3g})",
                file=sys.stderr,
            )
    if t.init == choices.FILTERBANK:
        model.start_as_filterbank()
    test_set = load_split(args.test_set)
    history = fit(model, train_set, test_set, t, device, on_epoch=epoch_hook())
    if t.loss == choices.SI_SDR and (gain := calibrate_gain(model.eval(), train_set["x"], train_set["y"])) is not None:
        print(
            f"train: output level set to the speech's (gain {gain:.3g}; the si_sdr loss leaves it free)",
            file=sys.stderr,
        )
    close_distributed()
    if rank != 0:  # under torchrun, rank 0 alone writes outputs and tracks
        return 0
    audio = {
        "sample_rate": p.data.sample_rate,
        "input_rms": train_set["x"].double().square().mean().sqrt().item(),
        "trained_on": trained_on(p, args.train_set),
        **test_si_sdr(model, test_set),
    }
    ckpt.save(model, args.model_out, audio)
    write_text(args.history_out, history_csv(history))
    return 0  # the MLflow run is logged by evaluate, which reads this model and history: one store opened


if __name__ == "__main__":
    run_stage(main, fast_exit=True)
