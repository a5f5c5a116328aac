"""speech_corpus: the voices' utterances (speech.voices' packages, or speech.folder's WAVs) and the
hold music, decoded, checked, at their own rates, with each package's licence and credit beside
them (ATTRIBUTION.md, copyright-<package>) and what each voice holds (voices.json)."""

from cnn_denoise.common import numerics

numerics.pin()  # before torch and NumPy load: they pick their kernels then (same bits on every machine)

import argparse
import sys
from pathlib import Path

from cnn_denoise.common.atomic import atomic_dir, clean_stale, save_torch, write_json
from cnn_denoise.common.errors import run_stage
from cnn_denoise.config import params
from cnn_denoise.speech import corpus, voices


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
    music = f"{music_deb.name} (sha256 {s.music.sha256.lower()})"
    if s.folder is None:
        paths = [(debs / corpus.deb_name(v.package, v.version), v.package) for v in s.voices]
        speech, summary = voices.corpus_speech(paths, s.min_seconds, s.trim_db)
        clips = {"speech": speech, "recorded": {}}
        packages = [path for path, _ in paths] + [music_deb]
        credits = voices.attribution(
            [(path.name, v.package, v.sha256) for (path, _), v in zip(paths, s.voices, strict=True)], music
        )
    else:
        clips = corpus.from_folder(s.folder, s.min_seconds, p.data.sample_rate)
        packages, summary = [music_deb], {}
        voice = f"your own recordings in {s.folder} (not from a package: their terms are yours to keep)"
        credits = corpus.CREDITS.format(voice=voice, music=music)
    clips["music"] = corpus.music_from_deb(music_deb)
    with atomic_dir(args.out) as tmp:
        save_torch(tmp / "corpus.pt", clips)
        write_json(tmp / "voices.json", summary)
        (tmp / "ATTRIBUTION.md").write_text(credits)
        for deb in packages:
            (tmp / f"copyright-{deb.name.split('_')[0]}").write_text(corpus.copyright_of(deb))
    for voice, about in sorted(summary.items()):
        print(f"speech_corpus: {voice}: {about['utterances']} utterances, {about['minutes']} min", file=sys.stderr)
    summary = ", ".join(f"{k}: {len(v)} clips, {corpus.seconds(v):.0f} s" for k, v in clips.items() if v)
    print(f"speech_corpus: {summary}", file=sys.stderr)


if __name__ == "__main__":
    run_stage(main, fast_exit=True)
