"""fetch: the dataset zip, made offline (data.url: synthetic) or downloaded and hash-checked."""

from cnn_denoise.common import numerics

numerics.pin()  # before torch and NumPy load: they pick their kernels then (same bits on every machine)

import argparse
import hashlib
import sys

from cnn_denoise.common import download, urls
from cnn_denoise.common.atomic import clean_stale, write_bytes
from cnn_denoise.common.errors import PipelineError, run_stage
from cnn_denoise.config import params


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", help="where to write the zip")
    args = parser.parse_args(argv)
    clean_stale(args.out)
    data = params.load().data
    if data.url != "synthetic":
        url = urls.expand(data.url)
        download.fetch(url, args.out, sha256=data.sha256, timeout=data.timeout, max_bytes=data.max_mb << 20)
        if not download.watched(url):
            print(
                f"fetch: DVC does not watch {urls.redact(url)} for changes: after it changes run `dvc repro -f "
                "fetch && dvc repro`, "
                "or keep the zip in sources/ (sources/README.md)",
                file=sys.stderr,
            )
        return
    from cnn_denoise.lab import synth

    s = data.synthetic
    blob = synth.make_zip(s.pairs, s.samples, s.seed)
    found = hashlib.sha256(blob).hexdigest()
    if data.sha256 is not None and found != data.sha256.lower():
        raise PipelineError(
            f"data.sha256 mismatch for the synthetic dataset: expected {data.sha256.lower()}, got {found}; "
            "update data.sha256 or set it to null"
        )
    write_bytes(args.out, blob)
    print(f"fetch: synthetic dataset, {s.pairs} pairs of {s.samples} samples, sha256 {found}", file=sys.stderr)


if __name__ == "__main__":
    run_stage(main, fast_exit=True)
