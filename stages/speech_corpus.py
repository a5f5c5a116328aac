"""speech_corpus: the English voice's prompts (or speech.folder's WAVs) and the hold music,
decoded, checked, at their own rates, with their attribution beside them."""

import argparse
import sys
from pathlib import Path

from cnn_denoise.common.atomic import atomic_dir, clean_stale, save_torch
from cnn_denoise.common.errors import run_stage
from cnn_denoise.config import params
from cnn_denoise.speech import corpus


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("debs", help="the folder speech_fetch wrote")
    parser.add_argument("out", help="folder for corpus.pt and the attribution")
    args = parser.parse_args(argv)
    clean_stale(args.out)
    p = params.load()
    s = p.speech
    debs = Path(args.debs)
    music_deb = debs / corpus.deb_name(s.music.package, s.music.version)
    if s.folder is None:
        voice_deb = debs / corpus.deb_name(s.voice.package, s.voice.version)
        clips = {"speech": corpus.voice_from_deb(voice_deb, s.min_seconds), "recorded": {}}
        packages = [voice_deb, music_deb]
        voice = f"{voice_deb.name} (sha256 {s.voice.sha256.lower()})"
    else:
        clips = corpus.from_folder(s.folder, s.min_seconds, p.data.sample_rate)
        packages = [music_deb]
        voice = f"your own recordings in {s.folder} (not from a package: their terms are yours to keep)"
    clips["music"] = corpus.music_from_deb(music_deb)
    with atomic_dir(args.out) as tmp:
        save_torch(tmp / "corpus.pt", clips)
        (tmp / "ATTRIBUTION.md").write_text(
            corpus.CREDITS.format(voice=voice, music=f"{music_deb.name} (sha256 {s.music.sha256.lower()})")
        )
        for deb in packages:
            (tmp / f"copyright-{deb.name.split('_')[0]}").write_text(corpus.copyright_of(deb))
    summary = ", ".join(f"{k}: {len(v)} clips, {corpus.seconds(v):.0f} s" for k, v in clips.items() if v)
    print(f"speech_corpus: {summary}", file=sys.stderr)


if __name__ == "__main__":
    run_stage(main, fast_exit=True)
