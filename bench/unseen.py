"""Speakers the speech model never heard: the test matrix again, with another voice.

The speech recipe trains on one English speaker (asterisk-core-sounds-en: Allison). Debian's
French-Canadian prompts (asterisk-core-sounds-fr-g722: June, a different speaker in another
language) are mixed here with the same noise kinds, SNR bands and test-side noise pools as the
matrix (the speech_mix stage's mixer and params), and every model is scored as
`cnn-denoise enhance` runs it, beside the noisy input, the least-squares filter, spectral
gating and the neural peers that can run here (src/cnn_denoise/scoring/systems.py), each with
its real-time factor on one thread. Writes bench/unseen.json, with a "headline": three lines on
the first model against the noisy input and the best peer (scoring/headline.py), which the shipped
model's card and docs/results.md quote; prints the table.

With --babble unseen the babble is the unseen voice too: a share of its prompts
(speech.babble_fraction, drawn with speech.split_seed) only ever babbles and the rest are the
targets. Then every voice in the mix is one the model never heard, as in a room of strangers; by
default the babble is the English speaker's own test-side pool, a voice the model knows. Writes
bench/unseen_babble_unseen.json then (--out names another file).

    python bench/unseen.py [--babble english|unseen] [--out FILE] [NAME=MODEL ...]
    (default model: speech=models:/cnn-denoise@speech)

Needs `dvc repro` first (the English corpus gives the babble and music pools) and apt-get or
a folder with the .deb (UNSEEN_SOURCE, as speech.source).
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGE, VERSION = "asterisk-core-sounds-fr-g722", "1.6.1-1"
SHA256 = "7add61d5e42279ecff1bbdf842a5a946ac3644fac9a0fe44384731aa7270c8e0"
VOICE = "usr/share/asterisk/sounds/fr_CA_f_June/"
RATE = 16000  # Hz: the speech recipe's
SEGMENTS = 24  # per set, as the matrix


def voice(path, min_seconds: float) -> dict:
    """{prompt: clip} of the French-Canadian voice (what corpus.voice_from_deb does for the English one)."""
    import numpy as np

    from cnn_denoise.speech import corpus

    files = corpus.deb_files(path, lambda n: n.startswith(VOICE) and n.endswith(".g722"))
    out = {}
    for name, blob in sorted(files.items()):
        audio, rate = corpus._decode_g722(blob, name)
        x = corpus.as_float(audio)
        if len(x) / rate >= min_seconds and np.sqrt(np.mean(x**2)) >= corpus.SILENT_RMS:
            out[name[len(VOICE) :]] = corpus._clip(audio, rate)
    return out


def model_argument(text: str) -> tuple[str, str]:
    """NAME=MODEL as (name, model), or argparse's error."""
    name, sep, source = text.partition("=")
    if not (sep and name and source):
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=MODEL (e.g. speech=models:/cnn-denoise@speech)")
    return name, source


def parser(doc: str) -> argparse.ArgumentParser:
    """The bench scripts' command line: models as NAME=MODEL, and where the JSON goes."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("models", nargs="*", type=model_argument, metavar="NAME=MODEL")
    p.add_argument("--out", type=Path, help="the JSON written (default: the script's own in bench/)")
    return p


def dealt(targets: dict, share: float, seed: int) -> tuple[dict, list]:
    """The unseen voice's prompts split (seeded) into targets and a babble pool of `share` of them."""
    import numpy as np

    names = sorted(targets)
    order = np.random.default_rng(seed).permutation(len(names))
    n_babble = max(2, round(share * len(names)))
    babble = sorted(names[i] for i in order[:n_babble])
    return {n: targets[n] for n in names if n not in babble}, [targets[n] for n in babble]


def setting(tmp: Path, kinds: list | None = None) -> tuple:
    """(params, the unseen voice's prompts, the English corpus, its split, its Mix): params.yaml at
    RATE with these noise kinds (None: its own but band, which needs 32 kHz), written to tmp, where
    the .deb is fetched too (stages/ on sys.path)."""
    import speech_mix

    from cnn_denoise.config import choices, params
    from cnn_denoise.speech import corpus

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["data"]["sample_rate"] = RATE
    raw["speech"]["kinds"] = [k for k in raw["speech"]["kinds"] if k != choices.BAND] if kinds is None else kinds
    (tmp / "params.yaml").write_text(yaml.safe_dump(raw))
    p = params.load(tmp / "params.yaml")
    deb = corpus.fetch_deb(PACKAGE, VERSION, SHA256, os.environ.get("UNSEEN_SOURCE", "apt"), tmp)
    corpus = speech_mix.load_corpus(ROOT / "data" / "speech" / "corpus")
    return p, voice(deb, p.speech.min_seconds), corpus, *speech_mix.setup(p, corpus)


def main(argv) -> int:
    sys.path.insert(0, str(ROOT / "stages"))
    import speech_mix

    from cnn_denoise.common.atomic import save_torch, write_json
    from cnn_denoise.config import choices
    from cnn_denoise.scoring import headline, matrix
    from cnn_denoise.speech import mixer

    cli = parser(__doc__)
    cli.add_argument(
        "--babble",
        choices=("english", "unseen"),
        default="english",
        help="whose voices babble: the held-out voices' pool, or the unseen voice's own",
    )
    cli.add_argument("--segments", type=int, default=SEGMENTS, help="segments per set (default: the matrix's)")
    args = cli.parse_intermixed_args(argv)
    babble = args.babble
    models = dict(args.models) or {"speech": "models:/cnn-denoise@speech"}
    out = args.out or ROOT / "bench" / ("unseen.json" if babble == "english" else "unseen_babble_unseen.json")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        p, targets, corpus, split, mix = setting(tmp)
        s = p.speech
        pools = mixer.pools_for(corpus, split, "test", s.test_fraction)
        if babble == "unseen":
            targets, pools[choices.BABBLE] = dealt(targets, s.babble_fraction, s.split_seed)
        index = {}
        for kind in s.kinds:
            for band in s.matrix.bands:
                name = mixer.set_name(kind, band)
                pairs, _ = mixer.mix_set(
                    name, targets, pools, speech_mix.scored(mix, kind, band), args.segments, s.seed
                )
                save_torch(tmp / "matrix" / f"{name}.pt", pairs)
                index[name] = {"kind": kind, "snr_db": list(band), "file": f"{name}.pt"}
        write_json(tmp / "matrix" / "index.json", {"rate": RATE, "sets": index})
        train, _ = mixer.mix_set("train", targets, pools, speech_mix.scored(mix), 200, s.seed)  # least squares' data
        save_torch(tmp / "train.pt", train)
        print(f"unseen: {len(targets)} prompts of {VOICE.rstrip('/').rsplit('/', 1)[1]}", file=sys.stderr)
        scores = matrix.score(tmp / "matrix", tmp / "train.pt", models)
    scores["voice"] = f"{PACKAGE} {VERSION} ({VOICE}), {args.segments} segments a set"
    scores["babble"] = (
        "the unseen voice's own prompts" if babble == "unseen" else "the held-out voices' test pool (speech_mix)"
    )
    # the first model's, which the shipped model's card and docs/results.md's top quote
    scores["headline"] = headline.headline(scores, next(iter(models)), " on an unseen voice")
    write_json(out, scores)
    systems = headline.systems(scores)
    print(f"{'set':16}" + "".join(f"{s:>15}" for s in systems) + "   (SI-SDR improvement over the noisy input, dB)")
    for name, row in scores["sets"].items():
        gains = [headline.value(row, s, "si_sdr_gain_db") for s in systems]  # None: a recording silenced
        print(f"{name:16}" + "".join(f"{v:>15.2f}" if v is not None else f"{'-':>15}" for v in gains))
    rtf = [headline.by_kind(scores, s, headline.RTF)["mean"] for s in systems]
    print(f"{'real-time factor':16}" + "".join(f"{v:>15.3f}" for v in rtf))
    print("\n".join(scores["headline"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
