"""make results: run the pipeline, the recipes and the sweep, and write docs/results.md.

Every table in docs/results.md comes from a run made here (or, for speed, from `make bench`'s
bench/results.json), headed by the command that made it and the commit it ran at, so no
figure in the docs is typed by hand. Slow: ~25 minutes on 2 CPU cores (the recipes and the
sweep). `--skip-experiments` re-renders from experiments already in `dvc exp show`.
"""

import argparse
import csv
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "results.md"
RECIPES = ["linear-gate", "lbfgs-scratch", "speech"]  # run in the workspace's copy (--temp); adam-scaled: not run here
MATRIX_HEADING = "## Test matrix: recorded speech, noise kind by SNR band"  # then UNSEEN_HEADING: the last two
UNSEEN_HEADING = "## A voice the speech model never heard"
MATRIX_RATE = 16000  # Hz: the speech recipe's; PESQ-WB and DNSMOS hear 16 kHz
MATRIX_MODELS = {"lab CNN": "models/model.pt", "linear-gate": "models:/cnn-denoise@linear-gate",
                 "speech": "models:/cnn-denoise@speech"}  # fmt: skip
SWEEP = "sweep"


class Failed(SystemExit):
    """A command that failed: ends make results with one line, unless a section catches it."""

    def __init__(self, cmd, returncode: int):
        super().__init__(f"error: {shlex.join(cmd)} failed (exit {returncode}); fix it and run make results again")
        self.returncode = returncode


def sh(cmd, capture: bool = True) -> tuple[str, float]:
    """Run a command in the repository; return its stdout (when captured) and wall time; stop
    on failure (Failed). A queued sweep leaves DVC's worker running a while: it would hold a
    captured pipe open, so runs are not captured."""
    print("+ " + shlex.join(cmd), file=sys.stderr)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE if capture else None, text=True)
    if proc.returncode:
        raise Failed(cmd, proc.returncode)
    return proc.stdout, time.perf_counter() - start


def commit() -> str:
    return sh(["git", "describe", "--always", "--dirty"])[0].strip()


def g(v, digits=4) -> str:
    """A figure with `digits` significant digits; '-' for a missing one."""
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(g(v) for v in row) + " |" for row in rows])


def heading(title: str, command: str, rev: str, note: str = "") -> str:
    return f"## {title}\n\n`{command}` at commit `{rev}`{note}\n"


def lab_section(seconds: float, rev: str) -> str:
    m = json.loads((ROOT / "reports" / "measures.json").read_text())  # every measure; eval.json holds the headline
    keys = ["l1", "l1_sum", "mse", "snr_db", "si_sdr_db", "stoi"]
    rows = [
        ["CNN, train set", *(m["train"].get(k) for k in keys)],
        ["CNN, test set", *(m["test"].get(k) for k in keys)],
    ]
    rows += [[f"baseline `{name}`, test set", *(b.get(k) for k in keys)] for name, b in m["baselines"].items()]
    history = list(csv.DictReader((ROOT / "metrics" / "history.csv").open()))
    first, last = history[0], history[-1]
    return "\n".join(
        [
            heading(
                "The lab's recipe on the default data",
                "dvc repro",
                rev,
                f", {seconds:.0f} s wall time for the whole pipeline.",
            ),
            "`params.yaml` as committed: layers [1, 5, 1], taps [40, 40], tanh on every layer, SGD lr 0.5, batch 32, "
            "20 epochs, mean L1 loss, on the synthetic data (300 recordings, 50 held out).\n",
            table(["system", *keys], rows),
            f"\nTest L1 over training (metrics/history.csv): {g(float(first['test_l1']))} at epoch {first['epoch']}, "
            f"{g(float(last['test_l1']))} at epoch {last['epoch']}.\n",
        ]
    )


def experiments() -> dict[str, dict]:
    """{name: {"params", "metrics", "commit"}} of the experiments of every commit (dvc exp show -A
    lists the newest first; the newest run of a name is kept)."""
    shown = json.loads(sh(["dvc", "exp", "show", "--all-commits", "--json"])[0])
    out = {}
    for baseline in shown:
        for exp in baseline.get("experiments") or []:
            for rev in exp.get("revs", []):
                data = rev.get("data") or {}
                metrics = ((data.get("metrics") or {}).get("metrics/eval.json") or {}).get("data")
                params = ((data.get("params") or {}).get("params.yaml") or {}).get("data")
                if rev.get("name") and metrics and params and rev["name"] not in out:
                    out[rev["name"]] = {"params": params, "metrics": metrics, "commit": baseline.get("rev", "")[:7]}
    return out


def ran_at(exps: dict, names: list[str], rev: str) -> str:
    """The commit(s) the named experiments ran at (their DVC baseline), else `rev`."""
    return ", ".join(sorted({exps[n]["commit"] for n in names if n in exps})) or rev


def recipes_section(exps: dict, seconds: dict, rev: str) -> str:
    rev = ran_at(exps, RECIPES, rev)
    rows = []
    for name in RECIPES:
        if name in exps:
            p, m = exps[name]["params"], exps[name]["metrics"]
            lin = m.get("linear") or m["baselines"]["linear"]  # older experiments: baselines.linear
            rows.append(
                [
                    name,
                    p["train"]["init"],
                    m["test"]["l1_sum"],
                    lin["l1_sum"],
                    m["test"]["si_sdr_db"],
                    lin["si_sdr_db"],
                    m["test"].get("stoi"),
                    g(seconds.get(name), 3),
                ]
            )
    cmds = "; ".join(f"make recipe NAME={n}" for n in RECIPES)
    return "\n".join(
        [
            heading("Recipes beyond the lab", cmds, rev, " (each a `dvc exp run`; recipes/*.yaml hold their params)."),
            "`linear` columns: the least-squares FIR filter with the same receptive field, fitted on the "
            "training set.\n",
            table(
                [
                    "experiment",
                    "train.init",
                    "test L1 per recording",
                    "linear L1 per recording",
                    "test SI-SDR (dB)",
                    "linear SI-SDR (dB)",
                    "test STOI",
                    "wall time (s)",
                ],
                rows,
            ),
            "",
        ]
    )


def sweep_section(exps: dict, rev: str, seconds: float | None) -> str:
    from cnn_denoise.recipes import book

    variants = book.load(SWEEP, ROOT)
    rev = ran_at(exps, [v.name for v in variants], rev)
    rows = []
    for variant in variants:
        if variant.name in exps:
            p, m = exps[variant.name]["params"], exps[variant.name]["metrics"]
            rows.append(
                [
                    variant.name,
                    p["model"]["taps"],
                    p["model"]["features"],
                    m["train"]["l1"],
                    m["test"]["l1"],
                    m["test"]["si_sdr_db"],
                ]
            )
    took = f", {seconds:.0f} s wall time, two at a time" if seconds else ""
    return "\n".join(
        [
            heading("A sweep of the lab's recipe", f"make recipe NAME={SWEEP}", rev, took + "."),
            table(["experiment", "model.taps", "model.features", "train L1", "test L1", "test SI-SDR (dB)"], rows),
            "",
        ]
    )


def bench_section() -> str:
    path = ROOT / "bench" / "results.json"
    if not path.exists():
        return "## Speed\n\nNo bench/results.json yet: run `make bench`, then `make results`.\n"
    r = json.loads(path.read_text())
    rows = [
        [
            b,
            r["seconds_per_epoch"][b],
            f"{100 * r['fraction_of_gemm_rate'][b]:.1f}%",
            r.get("peak_training_memory_mib", {}).get(b),
        ]
        for b in r["seconds_per_epoch"]
    ]
    stages = r.get("stage_seconds", {})
    enh = r.get("enhance")
    return "\n".join(
        [
            heading(
                "Speed of the MIMO-filter backends",
                r.get("command", "make bench"),
                r.get("commit", "not recorded"),
                f" on {r['device']}, torch {r['torch']} (bench/results.json).",
            ),
            f"One SGD epoch of the lab's CNN on {r['recordings']} x {r['samples']} samples; float32 GEMM rate "
            f"{g(r['gemm_gflops'], 3)} GFLOP/s, {g(r['useful_gflop_per_epoch'], 3)} useful GFLOP per epoch; "
            f"`auto` chose `{r['default_backend']}`.\n",
            table(["backend", "s/epoch", "share of GEMM rate", "peak training memory (MiB)"], rows),
            (
                "\nPipeline stages (s): "
                + ", ".join(f"{k} {v:.1f}" for k, v in stages.items())
                + (
                    f"; {r['pipeline_over_training']:.1f}x the training arithmetic ({r['training_arithmetic_s']:.1f} s)"
                    if "pipeline_over_training" in r
                    else ""
                )
                + ".\n"
            )
            if stages
            else "",
            (
                f"\nRecipe {r['recipe']} on the same data (s): "
                + ", ".join(f"{k} {v:.1f}" for k, v in r["recipe_seconds"].items())
                + f"; all {sum(r['recipe_seconds'].values()):.1f}.\n"
            )
            if "recipe_seconds" in r
            else "",
            auto_section(r.get("auto")),
            (
                f"\n`cnn-denoise enhance`, lab's CNN: {enh['audio_seconds']} s of {enh['format']} in "
                f"{enh['wall_seconds']:.2f} s, "
                f"real-time factor {enh['real_time_factor']:.3f}.\n"
            )
            if enh
            else "",
        ]
    )


def auto_section(rows) -> str:
    if not rows:
        return ""
    backends = list(rows[0]["seconds"])
    body = [
        [
            r["knob"],
            str(r[r["knob"]]).replace(" ", ""),
            r.get("recordings", max(32, r["batch"])),
            *(g(r["seconds"][b], 3) for b in backends),
            g(r["auto_seconds"], 3) if "auto_seconds" in r else "",
            r["auto"],
            f"{r['auto_over_fastest']:.2f}x",
        ]
        for r in rows
    ]
    return "\n".join(
        [
            "\n`auto` against each exact backend, one knob of the lab's shape (K 40, [1,5,1], 32000 samples, batch 32) "
            "changed at a time, and the recipes' shapes; seconds per SGD epoch over the recordings shown; "
            "`auto` picks a "
            "backend per layer ([plot](../bench/auto_cpu.png)):\n",
            table(["knob", "value", "recordings", *backends, "auto", "auto picks", "auto / fastest"], body),
        ]
    )


def team_section() -> str:
    path = ROOT / "bench" / "team.json"
    if not path.exists():
        return "## A team's infrastructure\n\nNo bench/team.json yet: run `make bench-team`, then `make results`.\n"
    r = json.loads(path.read_text())
    how = {"queue": "`dvc queue start -j N`", "warm": "`make sweep` (one warm process)"}
    rows = [
        [
            how[s.get("how", "queue")],
            s["store"],
            s["jobs"],
            f"{s['wall_s']:.1f}",
            f"{s['experiments_per_min']:.2f}",
            f"{s['complete_runs']} of 4",
        ]
        for s in r["sweeps"]
    ]
    fit = r.get("fit_s") or {}
    arithmetic = (
        f"\nThe training alone (`fit()` of the four, one at a time, 5 epochs): {sum(fit.values()):.1f} s "
        "(" + ", ".join(f"{k} {v:.1f}" for k, v in fit.items()) + ").\n"
        if fit
        else ""
    )
    return "\n".join(
        [
            heading(
                "A team's infrastructure", "make bench-team", r["commit"], f" on {r['cpus']} CPUs (bench/team.json)."
            ),
            f"`dvc repro -f` on the default data (s): tracking off {r['repro_off_s']:.1f}, SQLite store "
            f"{r['repro_sqlite_s']:.1f}, "
            f"PostgreSQL-backed server {r['repro_server_s']:.1f} (the server starts in {r['server_start_s']:.1f}). "
            f"`dvc push` to a folder remote {r['push_s']:.1f} s, `dvc pull` into a fresh clone "
            f"{r['pull_s']:.1f} s ({r['remote_mb']} MiB).\n",
            "Four experiments of the lab's sweep (5 epochs each, distinct seeds), queued or from `make sweep`:\n",
            table(["how", "store", "workers", "wall time (s)", "experiments per minute", "complete MLflow runs"], rows),
            arithmetic,
        ]
    )


def mix_matrix(folder: Path) -> None:
    """The speech test matrix and a training set for the least-squares filter, mixed at
    MATRIX_RATE by the speech_mix stage from the workspace's corpus (dvc repro made it), with
    params.yaml's speech section less the band noise a 16 kHz recording cannot hold."""
    import yaml

    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    p["data"]["sample_rate"] = MATRIX_RATE
    p["speech"]["kinds"] = [k for k in p["speech"]["kinds"] if k != "band"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "params.yaml").write_text(yaml.safe_dump(p))
    corpus, script = ROOT / "data" / "speech" / "corpus", str(ROOT / "stages" / "speech_mix.py")
    outs = [str(folder / n) for n in ("train.pt", "test.pt", "split.json")]
    for args in (["train", str(corpus), *outs], ["matrix", str(corpus), str(folder / "matrix")]):
        if subprocess.run([sys.executable, script, *args], cwd=folder).returncode:
            sys.exit("error: mixing the speech matrix failed; run dvc repro first (the speech stages)")


def available(model: str) -> bool:
    """Whether the model file exists or its alias is registered (make recipe NAME=... registers it)."""
    if not model.startswith("models:/"):
        return (ROOT / model).exists()
    from cnn_denoise import tracking

    return tracking.registered_alias([model.rsplit("@", 1)[1]]) is not None


def gains(scores: dict, system: str, measure: str = "si_sdr_db") -> dict:
    """{set name: the system's change over the noisy input} of a scores JSON (scoring/matrix.py, bench/unseen.py)."""
    return {name: row[system][measure] - row["noisy"][measure] for name, row in scores["sets"].items()}


def set_label(row: dict, prefix: str = "") -> str:
    return f"{prefix}{row['kind']} {row['snr_db'][0]:g}..{row['snr_db'][1]:g} dB"


def matrix_section(rev: str) -> str:
    """Every noise kind and SNR band: SI-SDR, PESQ-WB and DNSMOS OVRL of each model run as enhance
    runs it, beside the noisy input, the least-squares filter and spectral gating."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        mix_matrix(folder)
        shown = {k: v for k, v in MATRIX_MODELS.items() if available(v)}
        models = [f"{k}={v}" for k, v in shown.items()]
        start = time.perf_counter()
        sh([sys.executable, "-m", "cnn_denoise.scoring.matrix", str(folder / "matrix"), str(folder / "train.pt"),
            str(folder / "scores.json"), *models], capture=False)  # fmt: skip
        took = time.perf_counter() - start
        scores = json.loads((folder / "scores.json").read_text())
    systems = ["noisy", "least-squares", "gating", *shown]
    sets = scores["sets"]
    out = [heading(MATRIX_HEADING.removeprefix("## "),
                   "python -m cnn_denoise.scoring.matrix (docs/results.py)", rev,
                   f"; {MATRIX_RATE} Hz, {took:.0f} s. Each model runs as `cnn-denoise enhance` runs it (its own "
                   "rate and level); the lab's models were trained at 32 kHz on band noise only.")]  # fmt: skip
    for measure, label in (("si_sdr_db", "SI-SDR (dB)"), ("pesq_wb", "PESQ-WB"), ("dnsmos_ovrl", "DNSMOS OVRL")):
        rows = [[set_label(row), *(row[s][measure] for s in systems)] for row in sets.values()]
        mean = ["mean", *(float(np.mean([row[s][measure] for row in sets.values()])) for s in systems)]
        out += [f"\n{label}:\n", table(["set", *systems], [*rows, mean])]
    mean_gain = {s: float(np.mean(list(gains(scores, s).values()))) for s in systems[1:]}
    out.append(
        "\nMean SI-SDR improvement over the noisy input (dB): "
        + ", ".join(f"{s} {v:+.2f}" for s, v in mean_gain.items())
    )
    return "\n".join(out) + "\n"


UNSEEN_NOTE = (
    "The voice: {voice}, never in any training set, with the same noise kinds, SNR bands and test-side noise "
    "pools as the matrix above; each system runs as `cnn-denoise enhance` runs it. Its babble is the English "
    "speaker's test-side pool (a crowd of the voice the model knows); the last rows deal a fifth of the unseen "
    "voice's prompts into a crowd of strangers instead. A recording of your own voice is such a voice: these rows, "
    "not the matrix's, say what to expect."
)


def unseen_section(rev: str) -> tuple[str, bool]:
    """The speech model on another speaker in another language (bench/unseen.py), before a crowd of
    the English speaker and before a crowd of strangers: what a recording of the user's own voice,
    which no model here has heard, can expect. Beside it the least-squares filter and spectral gating.
    Also whether it was scored: a failed bench (no apt, say) leaves a line here, and the other
    sections' runs are kept."""
    import tempfile

    model, title = MATRIX_MODELS["speech"], UNSEEN_HEADING.removeprefix("## ")
    if not available(model):
        rerun = "run `make recipe NAME=speech`, then `python docs/results.py --matrix-only`"
        return f"## {title}\n\nNo model is registered as `{model}`: {rerun}.\n", True
    runs, took = {}, 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for babble in ("english", "unseen"):  # all kinds both times: the least-squares filter is fitted on them all
            out = Path(tmp) / f"{babble}.json"
            cmd = [sys.executable, "bench/unseen.py", "--babble", babble, "--out", str(out), f"speech={model}"]
            try:
                _, seconds = sh(cmd, capture=False)
                code = 0
            except Failed as failed:
                code = failed.returncode
            if code or not out.is_file():
                why = f"`bench/unseen.py --babble {babble}` failed (exit {code}) at `{rev}`"
                print(f"error: {why}; the other sections are written", file=sys.stderr)
                return (
                    f"## {title}\n\nNot scored: {why}. Fix it, then run `python docs/results.py --matrix-only`.\n",
                    False,
                )
            runs[babble], took = json.loads(out.read_text()), took + seconds
    english, strangers = runs["english"], runs["unseen"]
    systems = ["least-squares", "gating", "speech"]
    gain, strangers_gain = ({s: gains(run, s) for s in systems} for run in (english, strangers))
    rows = [[set_label(row), *(gain[s][name] for s in systems)] for name, row in english["sets"].items()]
    rows.append(["mean", *(float(np.mean(list(gain[s].values()))) for s in systems)])
    for name, row in strangers["sets"].items():
        if row["kind"] == "babble":
            rows.append([set_label(row, "babble of strangers: "), *(strangers_gain[s][name] for s in systems)])
    quality = ", ".join(
        f"{s} {np.mean([r[s]['pesq_wb'] for r in english['sets'].values()]):.3f} / "
        f"{np.mean([r[s]['dnsmos_ovrl'] for r in english['sets'].values()]):.3f}"
        for s in ["noisy", *systems]
    )
    command = f"python bench/unseen.py [--babble unseen] speech={model} (docs/results.py)"
    return (
        "\n".join(
            [
                heading(title, command, rev, f"; {took:.0f} s. " + UNSEEN_NOTE.format(voice=english["voice"])),
                "SI-SDR improvement over the noisy input (dB):\n",
                table(["set", *systems], rows),
                f"\nPESQ-WB / DNSMOS OVRL, the mean of the sets down to the mean row: {quality}.",
            ]
        )
        + "\n",
        True,
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--skip-experiments", action="store_true", help="render the experiments already in dvc exp show"
    )
    parser.add_argument(
        "--matrix-only",
        action="store_true",
        help="rescore the speech sections only (the test matrix, the unseen voice), keeping the others as they are",
    )
    args = parser.parse_args(argv)
    rev = commit()
    if args.matrix_only:
        text = OUT.read_text()
        start = text.find(MATRIX_HEADING)
        kept = text[:start].rstrip("\n") if start >= 0 else text.rstrip("\n")
        unseen, scored = unseen_section(rev)
        OUT.write_text(kept + "\n\n" + matrix_section(rev) + "\n" + unseen)
        print(f"wrote {OUT.relative_to(ROOT)} (the speech sections)", file=sys.stderr)
        return 0 if scored else 1
    _, repro_s = sh(["dvc", "repro", "-f"], capture=False)
    seconds, sweep_s = {}, None
    if not args.skip_experiments:
        for name in RECIPES:
            # --force: this run takes the recipe's own name, which the tables look up, even where a
            # trial of the same recipe ran before (else DVC names it speech-2 and the table shows the trial)
            run = [sys.executable, "-m", "cnn_denoise.recipes", "run", name, "--temp", "--force"]
            _, seconds[name] = sh(run, capture=False)
        _, sweep_s = sh([sys.executable, "-m", "cnn_denoise.recipes", "run", SWEEP], capture=False)
    exps = experiments()
    parts = [
        "# Results\n",
        "Generated by `make results` (docs/results.py) from real runs; do not edit by hand. "
        "Machine: see each table's heading. The lab's text: [Lab 2B, ESE 2000, University of Pennsylvania](lab.md).\n",
        lab_section(repro_s, rev),
        recipes_section(exps, seconds, rev),
        sweep_section(exps, rev, sweep_s),
        bench_section(),
        team_section(),
        matrix_section(rev),  # the last two: --matrix-only replaces them
    ]
    unseen, scored = unseen_section(rev)
    parts.append(unseen)
    OUT.write_text("\n".join(parts).rstrip("\n") + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}", file=sys.stderr)
    return 0 if scored else 1


if __name__ == "__main__":
    sys.exit(main())
