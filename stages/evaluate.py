"""evaluate: the lab's deliverables (train and test L1) and how the CNN compares.

On the test set, beside the CNN: outputting zeros, outputting x unchanged, the best linear
(least-squares FIR) filter with the CNN's receptive field, and an ideal low-pass; each with
L1, the lab's L1, MSE, SNR, SNR gain, SI-SDR and STOI. Writes WAVs and figures to reports/.
"""

import argparse
import json
import sys

import torch

from cnn_denoise import baselines, params, quality, report, tracking
from cnn_denoise import model as cnn
from cnn_denoise.atomic import atomic_dir, write_json
from cnn_denoise.dataset import load_split
from cnn_denoise.errors import run_stage
from cnn_denoise.metrics import losses, predict, scores


def measures(pred, x, y, sample_rate):
    """Every measure of one system's outputs on the test set."""
    return {**scores(pred, y), **quality.measures(pred, x, y, sample_rate)}


def write_reports(folder, model, h, test, outputs, ev, rate):
    with atomic_dir(folder) as tmp:
        for q in range(min(ev.examples, test["x"].shape[0])):
            signals = {"noisy": test["x"][q, 0], "clean": test["y"][q, 0], "cnn": outputs["cnn"][q, 0], "linear": outputs["linear"][q, 0]}
            signals = {k: v.double().numpy() for k, v in signals.items()}
            report.write_wavs(tmp / "audio", f"test{q}", signals, rate)
            report.example_figure(tmp / f"test{q}.png", signals, rate, f"test recording {q}")
        report.response_figure(tmp / "filters.png", model.layers[0].H.detach().double().numpy(), h.numpy(), rate)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model")
    parser.add_argument("train_set")
    parser.add_argument("test_set")
    parser.add_argument("metrics_out")
    parser.add_argument("reports_out", help="folder for WAVs and figures")
    args = parser.parse_args(argv)
    p = params.load()
    ev, rate = p.evaluate, p.data.sample_rate
    model = cnn.load(args.model)
    train, test = load_split(args.train_set), load_split(args.test_set)
    h = baselines.fit_fir(train["x"], train["y"], model.receptive_field)
    gain = baselines.fit_gain(baselines.ideal_lowpass(train["x"], ev.lowpass_hz, rate), train["y"])
    x, y = test["x"], test["y"]
    outputs = {
        "cnn": predict(model, x),
        "zeros": torch.zeros_like(y),
        "noisy": x,
        "linear": baselines.apply_fir(h, x),
        "lowpass": gain * baselines.ideal_lowpass(x, ev.lowpass_hz, rate),
    }
    metrics = {
        "train": losses(model, train["x"], train["y"]),
        "test": measures(outputs["cnn"], x, y, rate),
        "baselines": {name: measures(out, x, y, rate) for name, out in outputs.items() if name != "cnn"},
    }
    write_reports(args.reports_out, model, h, test, outputs, ev, rate)
    write_json(args.metrics_out, metrics)
    summary = {name: round(m["l1"], 9) for name, m in [("train", metrics["train"]), ("test", metrics["test"])] + list(metrics["baselines"].items())}
    print("L1: " + json.dumps(summary), file=sys.stderr)
    return tracking.guarded("logging evaluation", lambda: tracking.log_evaluation(args.model, metrics, args.reports_out))


if __name__ == "__main__":
    run_stage(main)
