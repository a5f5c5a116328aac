"""unzip: load the zip's torch file safely (weights_only), validate it, stack it as {x, y}."""

import argparse
import sys

from cnn_denoise.common.atomic import clean_stale, save_torch
from cnn_denoise.common.errors import run_stage
from cnn_denoise.lab.dataset import read_torch_member, to_pairs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("zip", help="the dataset zip from fetch")
    parser.add_argument("out", help="where to write the validated pairs")
    args = parser.parse_args(argv)
    clean_stale(args.out)
    pairs = to_pairs(read_torch_member(args.zip))
    save_torch(args.out, pairs)
    q, _, n = pairs["x"].shape
    print(f"unzip: {q} pairs of {n} samples", file=sys.stderr)


if __name__ == "__main__":
    run_stage(main, fast_exit=True)
