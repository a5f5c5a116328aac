"""split: hold out data.test_size pairs for testing, seeded by data.split_seed."""

import argparse
import sys

import torch

from cnn_denoise.common.atomic import clean_stale, save_torch
from cnn_denoise.common.errors import run_stage
from cnn_denoise.config import params
from cnn_denoise.lab.dataset import split_pairs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("pairs", help="the validated pairs from unzip")
    parser.add_argument("train_out")
    parser.add_argument("test_out")
    args = parser.parse_args(argv)
    clean_stale(args.train_out, args.test_out)
    data = params.load().data
    train, test = split_pairs(torch.load(args.pairs, weights_only=True), data.test_size, data.split_seed)
    save_torch(args.train_out, train)
    save_torch(args.test_out, test)
    print(f"split: {train['x'].shape[0]} train, {test['x'].shape[0]} test", file=sys.stderr)


if __name__ == "__main__":
    run_stage(main, fast_exit=True)
