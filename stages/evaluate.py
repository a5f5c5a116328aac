"""evaluate: the lab's deliverables (train and test L1) plus MSE and two baselines on the test set."""

import argparse
import json
import sys

import torch

from cnn_denoise import model as cnn
from cnn_denoise import tracking
from cnn_denoise.atomic import write_json
from cnn_denoise.dataset import load_split
from cnn_denoise.errors import run_stage
from cnn_denoise.metrics import losses


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model")
    parser.add_argument("train_set")
    parser.add_argument("test_set")
    parser.add_argument("metrics_out")
    args = parser.parse_args(argv)
    model = cnn.load(args.model)
    train, test = load_split(args.train_set), load_split(args.test_set)
    metrics = {
        "train": losses(model, train["x"], train["y"]),
        "test": losses(model, test["x"], test["y"]),
        "baselines": {  # on the test set: what doing nothing scores
            "zeros": losses(torch.zeros_like, test["x"], test["y"]),
            "noisy": losses(lambda x: x, test["x"], test["y"]),
        },
    }
    write_json(args.metrics_out, metrics)
    print(json.dumps({k: metrics[k]["l1"] for k in ("train", "test")}), file=sys.stderr)
    return tracking.guarded("logging evaluation", lambda: tracking.log_evaluation(args.model, metrics))


if __name__ == "__main__":
    run_stage(main)
