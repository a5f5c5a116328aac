"""speech_fetch: the Debian packages of recorded voices and hold music, SHA-256 checked
(speech.source: apt-get download, or a folder or URL holding the .debs)."""

import argparse
import sys

from cnn_denoise.common.atomic import atomic_dir, clean_stale
from cnn_denoise.common.errors import run_stage
from cnn_denoise.config import params
from cnn_denoise.speech import corpus, voices


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", help="folder for the .deb files")
    args = parser.parse_args(argv)
    clean_stale(args.out)
    s = params.load().speech
    wanted = [s.music] if s.folder is not None else [*s.voices, s.music]  # a folder of your own replaces the voices
    for pkg in wanted[:-1]:
        voices.check_package(pkg.package)  # reserved and bench voices: refused before any download
    with atomic_dir(args.out) as tmp:
        for pkg in wanted:
            path = corpus.fetch_deb(pkg.package, pkg.version, pkg.sha256, s.source, tmp)
            print(f"speech_fetch: {path.name}, sha256 {pkg.sha256.lower()}", file=sys.stderr)


if __name__ == "__main__":
    run_stage(main, fast_exit=True)
