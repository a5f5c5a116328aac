"""baselines: the baselines that do not depend on the CNN, measured once per dataset.

On the test set: outputting zeros, the noisy input unchanged, and an ideal low-pass (its gain
fitted on the training set), each with every measure evaluate reports (L1, the lab's L1, MSE,
SNR, SNR gain, SI-SDR, STOI). Evaluate adds them to its report beside the CNN and the
least-squares filter, which takes the CNN's receptive field and so is fitted there: a sweep of
CNNs on one dataset measures these once, not in every experiment.
"""

from cnn_denoise.common import numerics

numerics.pin()  # before torch and NumPy load: they pick their kernels then (same bits on every machine)

import argparse
import sys

from cnn_denoise.common.atomic import check_writable, clean_stale, write_json
from cnn_denoise.common.errors import run_stage
from cnn_denoise.config import params
from cnn_denoise.lab.dataset import load_split
from cnn_denoise.scoring import quality


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("train_set")
    parser.add_argument("test_set")
    parser.add_argument("out", help="the baselines' measures (JSON), evaluate --baselines reads it")
    args = parser.parse_args(argv)
    clean_stale(args.out)
    p = params.load()
    check_writable(args.out)
    rate, cutoff = p.data.sample_rate, p.evaluate.lowpass_hz
    train, test = load_split(args.train_set), load_split(args.test_set)
    measured = quality.model_free_measures(train, test, cutoff, rate)
    recordings = len(test["y"])
    write_json(args.out, {"lowpass_hz": cutoff, "sample_rate": rate, "recordings": recordings, "baselines": measured})
    print(f"baselines: {', '.join(measured)} on {recordings} test recordings", file=sys.stderr)


if __name__ == "__main__":
    run_stage(main, fast_exit=True)
