"""train: the CNN of params.yaml (model.*) trained as train.* says (the lab: SGD on the mean L1)."""

import argparse
import csv
import io
import sys

from cnn_denoise import model as cnn
from cnn_denoise import params, spec, tracking
from cnn_denoise.atomic import check_writable, clean_stale, write_text
from cnn_denoise.dataset import load_split
from cnn_denoise.errors import run_stage
from cnn_denoise.train import close_distributed, deterministic, exact_float32, fit, init_distributed, pick_device
from cnn_denoise.warmstart import linear_start


def history_csv(history: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(history[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: (f"{v:.9g}" if isinstance(v, float) else v) for k, v in row.items()} for row in history)
    return out.getvalue()


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
    if t.init == spec.LINEAR:
        start = linear_start(model, train_set["x"], train_set["y"])
        if rank == 0:
            print(
                f"train: starting as the {start['taps']}-tap least-squares filter (residual RMS "
                f"{start['residual_rms']:.3g})",
                file=sys.stderr,
            )
    history = fit(model, train_set, load_split(args.test_set), t, device, on_epoch=tracking.epoch_hook())
    close_distributed()
    if rank != 0:  # under torchrun, rank 0 alone writes outputs and tracks
        return 0
    audio = {"sample_rate": p.data.sample_rate, "input_rms": train_set["x"].double().square().mean().sqrt().item()}
    cnn.save(model, args.model_out, audio)
    write_text(args.history_out, history_csv(history))
    logged = params.flatten(p.model_dump(include={"model", "train"}))
    return tracking.guarded(
        "logging training",
        lambda: tracking.log_training(
            logged,
            history,
            args.model_out,
            args.history_out,
            splits={"train": args.train_set, "test": args.test_set},
        ),
    )


if __name__ == "__main__":
    run_stage(main)
