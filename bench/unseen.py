"""Speakers the speech model never heard: the test matrix again, with another voice.

The speech recipe trains on one English speaker (asterisk-core-sounds-en: Allison). Debian's
French-Canadian prompts (asterisk-core-sounds-fr-g722: June, a different speaker in another
language) are mixed here with the same noise kinds, SNR bands and test-side noise pools as the
matrix (the speech_mix stage's mixer and params), and every model is scored as
`cnn-denoise enhance` runs it, beside the noisy input, the least-squares filter and spectral
gating (src/cnn_denoise/matrix.py). Writes bench/unseen.json and prints the table.

    python bench/unseen.py [NAME=MODEL ...]    (default: speech=models:/cnn-denoise@speech)

Needs `dvc repro` first (the English corpus gives the babble and music pools) and apt-get or
a folder with the .deb (UNSEEN_SOURCE, as speech.source).
"""

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
    """{prompt: clip} of the French-Canadian voice (what speech.voice_from_deb does for the English one)."""
    import numpy as np

    from cnn_denoise import speech

    files = speech.deb_files(path, lambda n: n.startswith(VOICE) and n.endswith(".g722"))
    out = {}
    for name, blob in sorted(files.items()):
        audio, rate = speech._decode_g722(blob, name)
        x = speech.as_float(audio)
        if len(x) / rate >= min_seconds and np.sqrt(np.mean(x**2)) >= speech.SILENT_RMS:
            out[name[len(VOICE) :]] = speech._clip(audio, rate)
    return out


def main(argv) -> int:
    sys.path.insert(0, str(ROOT / "stages"))
    import speech_mix

    from cnn_denoise import matrix, mixer, params, speech
    from cnn_denoise.atomic import save_torch, write_json

    models = dict(a.split("=", 1) for a in argv) or {"speech": "models:/cnn-denoise@speech"}
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["data"]["sample_rate"] = RATE
    raw["speech"]["kinds"] = [k for k in raw["speech"]["kinds"] if k != "band"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "params.yaml").write_text(yaml.safe_dump(raw))
        p = params.load(tmp / "params.yaml")
        s = p.speech
        deb = speech.fetch_deb(PACKAGE, VERSION, SHA256, os.environ.get("UNSEEN_SOURCE", "apt"), tmp)
        targets = voice(deb, s.min_seconds)
        corpus = speech_mix.load_corpus(ROOT / "data" / "speech" / "corpus")
        split, mix = speech_mix.setup(p, corpus)
        pools = mixer.pools_for(corpus, split, "test", s.test_fraction)
        index = {}
        for kind in s.kinds:
            for band in s.matrix.bands:
                name = mixer.set_name(kind, band)
                pairs, _ = mixer.mix_set(name, targets, pools, speech_mix.scored(mix, kind, band), SEGMENTS, s.seed)
                save_torch(tmp / "matrix" / f"{name}.pt", pairs)
                index[name] = {"kind": kind, "snr_db": list(band), "file": f"{name}.pt"}
        write_json(tmp / "matrix" / "index.json", {"rate": RATE, "sets": index})
        train, _ = mixer.mix_set("train", targets, pools, speech_mix.scored(mix), 200, s.seed)  # least squares' data
        save_torch(tmp / "train.pt", train)
        print(f"unseen: {len(targets)} prompts of {VOICE.rstrip('/').rsplit('/', 1)[1]}", file=sys.stderr)
        scores = matrix.score(tmp / "matrix", tmp / "train.pt", models)
    scores["voice"] = f"{PACKAGE} {VERSION} ({VOICE})"
    write_json(ROOT / "bench" / "unseen.json", scores)
    systems = [k for k in next(iter(scores["sets"].values())) if k not in ("kind", "snr_db")]
    print(f"{'set':16}" + "".join(f"{s:>15}" for s in systems) + "   (SI-SDR improvement over the noisy input, dB)")
    for name, row in scores["sets"].items():
        base = row["noisy"]["si_sdr_db"]
        print(f"{name:16}" + "".join(f"{row[s]['si_sdr_db'] - base:>15.2f}" for s in systems))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
