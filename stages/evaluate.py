"""evaluate: the lab's deliverables (train and test L1) and how the CNN compares.

On the test set, beside the CNN: outputting zeros, outputting x unchanged, the best linear
(least-squares FIR) filter with the CNN's receptive field, and an ideal low-pass; each with
L1, the lab's L1, MSE, SNR, SNR gain, SI-SDR and STOI. Writes WAVs and figures to reports/.

With evaluate.sets naming test sets (lab: data/split/test.pt; speech: each set of
data/speech/matrix, one per noise kind and SNR band), eval.json gains "sets": per set, the CNN
beside the systems every comparison scores (scoring/systems.py: the noisy input, the
least-squares filter, spectral gating; on the speech sets also the neural peers that can run
here), each with its real-time factor; on the speech sets also wide-band PESQ and DNSMOS (PESQ
cannot hear the lab's 14-15.5 kHz noise: not reported there).
"""

from cnn_denoise.common import numerics

numerics.pin()  # before torch and NumPy load: they pick their kernels then (same bits on every machine)

import argparse
import csv
import hashlib
import json
import sys
from pathlib import Path

from cnn_denoise import tracking
from cnn_denoise.common.atomic import atomic_dir, check_writable, clean_stale, write_json
from cnn_denoise.common.errors import PipelineError, run_stage
from cnn_denoise.common.hashing import sha256_file
from cnn_denoise.config import choices, params
from cnn_denoise.lab import baselines
from cnn_denoise.lab.dataset import load_split
from cnn_denoise.models import checkpoint as ckpt
from cnn_denoise.scoring import figures, quality, systems
from cnn_denoise.scoring.sets import model_scores, predict

DIGITS = 6  # significant digits kept: the same bytes on every machine of a kind (STOI varies in the 16th)
SHOWN = {"train": ("l1", "l1_sum"), "test": ("l1", "l1_sum", "si_sdr_db", "snr_gain_db", "stoi")}


def rounded(tree):
    """Every float of a nested dict to DIGITS significant digits."""
    if isinstance(tree, dict):
        return {k: rounded(v) for k, v in tree.items()}
    return float(f"{tree:.{DIGITS}g}") if isinstance(tree, float) else tree


def headline(full: dict) -> dict:
    """What metrics/eval.json shows (dvc metrics show, dvc exp show): the lab's deliverables,
    the measures a person compares first, and the bar to beat: the least-squares filter."""
    out = {split: {k: full[split][k] for k in keys} for split, keys in SHOWN.items()}
    out["linear"] = {
        k: full["baselines"]["linear"][k] for k in ("l1_sum", "si_sdr_db")
    }  # l1_sum: readable at dvc's 5 decimals
    if "sets" in full:
        out["sets"] = {
            name: {k: ({m: v[m] for m in SET_SHOWN if m in v} if isinstance(v, dict) else v) for k, v in row.items()}
            for name, row in full["sets"].items()
        }
    return out


LAB_SET = "data/split/test.pt"  # evaluate.sets: lab
MATRIX = Path("data/speech/matrix")  # evaluate.sets: speech (speech_matrix writes it)
# rtf (timed, so it differs run to run): docs/results.md reads the speech recipe's from its eval.json
SET_SHOWN = ("l1", "si_sdr_db", "si_sdr_gain_db", "snr_gain_db", "stoi", "pesq_wb", "dnsmos_sig", "dnsmos_bak",
             "dnsmos_ovrl", "rtf")  # fmt: skip


def named_sets(names, rate: int) -> dict:
    """{set name: (what eval.json records of it, its path)} of the sets evaluate.sets names."""
    out = {}
    if choices.LAB in names:
        out["lab"] = ({"noise": "the lab's 14-15.5 kHz band"}, LAB_SET)
    if choices.SPEECH in names:
        try:
            index = json.loads((MATRIX / "index.json").read_text())
        except (OSError, ValueError) as exc:
            raise PipelineError(
                f"{MATRIX / 'index.json'} unreadable ({exc}); run dvc repro (the speech_matrix stage writes it)"
            ) from None
        if index.get("rate") != rate:
            raise PipelineError(
                f"{MATRIX} is at {index.get('rate')} Hz but data.sample_rate is {rate}; run dvc repro (speech_matrix "
                "mixes at data.sample_rate)"
            )
        for name, info in index["sets"].items():
            out[name] = ({"noise": info["kind"], "snr_db": info["snr_db"]}, MATRIX / info["file"])
    return out


def score_sets(sets: dict, model, h, rate) -> dict:
    """Every named set: the CNN and the listed systems (scoring/systems.py: noisy input,
    least-squares filter, spectral gating; on speech the peers too), each with the lab's measures,
    its real-time factor and, on speech, PESQ-WB and DNSMOS."""
    speech = [name for name in sets if name != "lab"]
    ran = systems.peer_names() if speech else []  # speech denoisers: the lab's band noise is not theirs
    out = {}
    for name, (info, path) in sets.items():
        pairs = load_split(path)
        listed = systems.baselines(h, rate, ran if name in speech else [], "linear")
        runs = {"cnn": lambda x: predict(model, x), **listed}
        row = {**info, **systems.score(runs, pairs["x"], pairs["y"], rate, quality.all_measures, name in speech)}
        out[name] = row
        print(
            f"evaluate: {name}: SI-SDR cnn {row['cnn']['si_sdr_db']}, noisy {row['noisy']['si_sdr_db']}",
            file=sys.stderr,
        )
    return out


def write_reports(folder, model, h, test, outputs, ev, rate, full):
    with atomic_dir(folder) as tmp:
        write_json(tmp / "measures.json", full)
        for q in range(min(ev.examples, test["x"].shape[0])):
            signals = {
                "noisy": test["x"][q, 0],
                "clean": test["y"][q, 0],
                "cnn": outputs["cnn"][q, 0],
                "linear": outputs["linear"][q, 0],
            }
            signals = {k: v.double().numpy() for k, v in signals.items()}
            figures.write_wavs(tmp / "audio", f"test{q}", signals, rate)
            figures.example_figure(tmp / f"test{q}.png", signals, rate, f"test recording {q}")
        if hasattr(model, "layers"):  # the lab's CNN: its first layer's filters beside the linear one
            figures.response_figure(tmp / "filters.png", model.layers[0].H.detach().double().numpy(), h.numpy(), rate)


BASELINES = ("zeros", "noisy", "linear", "lowpass")  # in eval.json's order


def read_baselines(path, lowpass_hz: float, rate: int, recordings: int) -> dict:
    """The baselines stage's measures, {zeros, noisy, lowpass: measures}, checked to be of this
    test set's size and these params."""
    try:
        saved = json.loads(Path(path).read_text())
        made = (saved["lowpass_hz"], saved["sample_rate"], saved["recordings"])
        fixed = {name: dict(saved["baselines"][name]) for name in ("zeros", "noisy", "lowpass")}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PipelineError(f"{path} is not the baselines stage's output ({exc}); run dvc repro baselines") from None
    if made != (lowpass_hz, rate, recordings):
        raise PipelineError(
            f"{path} was measured at {made[0]} Hz low-pass, {made[1]} Hz, {made[2]} recordings, not "
            f"{lowpass_hz}, {rate}, {recordings}; run dvc repro baselines"
        )
    return fixed


def read_history(path) -> list[dict]:
    """The train stage's metrics/history.csv as its rows: {epoch: int, train_l1: float, ...}."""
    try:
        with open(path, newline="") as f:
            return [{k: int(v) if k == "epoch" else float(v) for k, v in row.items()} for row in csv.DictReader(f)]
    except (ValueError, TypeError, csv.Error) as exc:
        raise PipelineError(f"{path} is not the train stage's history ({exc}); run dvc repro train") from None


def log_peers(scored: dict, sets: dict) -> None:
    """Each peer that ran on the sets as a baseline run, once per test matrix (the sets' files) and version."""
    from cnn_denoise import peers  # here: the lab's evaluate (no sets) does not load them

    ran = [name for name in peers.PEERS if any(name in row for row in scored.values())]
    if ran:
        matrix = hashlib.sha256("".join(sha256_file(path) for _, path in sets.values()).encode()).hexdigest()[:32]
        tracking.log_set_baselines(scored, {name: {"version": peers.version(name)} for name in ran}, matrix)


# the least-squares filter has the CNN's receptive field up to this many taps: a masknet reaches
# back a second, and its normal equations would grow with the square of that
LINEAR_MAX_TAPS = 1024


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model")
    parser.add_argument("train_set")
    parser.add_argument("test_set")
    parser.add_argument("metrics_out")
    parser.add_argument("reports_out", help="folder for WAVs and figures")
    parser.add_argument(
        "-H", "--history", help="the train stage's per-epoch losses (CSV): log the model's training run too"
    )
    parser.add_argument("-B", "--baselines", help="the baselines stage's measures (JSON), else measured here")
    args = parser.parse_args(argv)
    clean_stale(args.metrics_out, args.reports_out)
    p = params.load()
    check_writable(args.metrics_out, Path(args.reports_out) / "measures.json")  # before the work, not after
    ev, rate = p.evaluate, p.data.sample_rate
    model = ckpt.load(args.model)
    history = read_history(args.history) if args.history else None
    train, test = load_split(args.train_set), load_split(args.test_set)
    taps = min(model.receptive_field, LINEAR_MAX_TAPS)
    h = baselines.fit_fir(train["x"], train["y"], taps)
    x, y = test["x"], test["y"]
    if args.baselines:  # the baselines stage measured those that do not depend on the CNN
        fixed = read_baselines(args.baselines, ev.lowpass_hz, rate, len(y))
    else:
        fixed = quality.model_free_measures(train, test, ev.lowpass_hz, rate)
    outputs = {"cnn": predict(model, x), "linear": baselines.apply_fir(h, x)}
    measured = {"linear": quality.all_measures(outputs["linear"], x, y, rate)}
    full = rounded(
        {
            "train": model_scores(model, train["x"], train["y"]),
            "test": quality.all_measures(outputs["cnn"], x, y, rate),
            "baselines": {name: {**fixed, **measured}[name] for name in BASELINES},
        }
    )
    if ev.sets:
        full["sets"] = rounded(score_sets(named_sets(ev.sets, rate), model, h, rate))
    write_reports(args.reports_out, model, h, test, outputs, ev, rate, full)
    write_json(args.metrics_out, headline(full))
    summary = {
        name: m["l1"]
        for name, m in [("train", full["train"]), ("test", full["test"])] + list(full["baselines"].items())
    }
    print("L1: " + json.dumps(summary), file=sys.stderr)

    def log():
        if history is not None:  # the train stage's run: logged here, where the store is opened anyway
            tracking.log_training(
                params.flatten(p.model_dump(include={"model", "train"})),
                history,
                args.model,
                args.history,
                splits={"train": args.train_set, "test": args.test_set},
            )
        evaluation = {k: full[k] for k in ("train", "test", "sets") if k in full}  # sets: a test matrix
        tracking.log_evaluation(args.model, evaluation, args.reports_out, full["baselines"])
        settings = {"linear": {"taps": taps}, "lowpass": {"cutoff_hz": ev.lowpass_hz}}
        tracking.log_baselines(
            full["baselines"],
            settings,
            sha256_file(args.train_set)[:16] + sha256_file(args.test_set)[:16],
        )
        if "sets" in full:
            log_peers(full["sets"], named_sets(ev.sets, rate))

    return tracking.guarded("logging evaluation" if history is None else "logging training and evaluation", log)


if __name__ == "__main__":
    run_stage(main, fast_exit=True)
