"""What `make repro` (after `dvc metrics show`) and `make exps` print: the lab's two
deliverables, then the CNN beside every baseline with what each baseline means, so a reader
knows which is the bar to beat and which is only a reference."""

import json
import math
import subprocess
import sys
from pathlib import Path

import yaml

from cnn_denoise.common.tables import cell

# (name in reports/measures.json, label, what it means): the order a reader climbs
BASELINES = (
    ("zeros", "zeros (silence)", "outputting nothing: the floor"),
    ("noisy", "noisy input", "doing nothing: a denoiser must beat it"),
    ("linear", "least-squares filter", "the best causal linear filter of the CNN's receptive field: the bar to beat"),
    ("lowpass", "ideal low-pass", "non-causal, told the noise band: an upper reference, not a competitor"),
)


# Printed under the table: `enhance --score` (DNSMOS) can rise where SI-SDR falls (a model that
# muffles noise and speech alike sounds cleaner and is further from the speech); unexplained, the
# two numbers look like a contradiction.
MEANING = (
    "SI-SDR: how close the output is to the clean speech (it needs that reference); DNSMOS (enhance --score): "
    "how clean it sounds, no reference. They can disagree."
)


def table(measures: dict) -> list[str]:
    """The test set's L1, SI-SDR and STOI of the CNN and each baseline, with their meaning."""
    rows = [("this CNN", measures["test"], "")]
    rows += [
        (label, measures["baselines"][key], meaning)
        for key, label, meaning in BASELINES
        if key in measures["baselines"]
    ]
    lines = [f"{'on the test set':22} {'L1':>10} {'SI-SDR dB':>9} {'STOI':>6}"]
    for label, m, meaning in rows:
        l1, sdr, stoi = cell(m.get("l1"), ".3e"), cell(m.get("si_sdr_db"), ".2f"), cell(m.get("stoi"), ".3f")
        lines.append(f"{label:22} {l1:>10} {sdr:>9} {stoi:>6}  {meaning}".rstrip())
    return lines


def verdict(measures: dict, recipes: Path = Path("recipes")) -> str | None:
    """One plain sentence when the CNN is worse than its own noisy input, and where to go next."""
    cnn, noisy = measures["test"].get("si_sdr_db"), measures["baselines"].get("noisy", {}).get("si_sdr_db")
    if cnn is None or noisy is None or cnn >= noisy:
        return None
    nxt = "make recipe NAME=speech" if (recipes / "speech.yaml").exists() else "make recipe"
    return (
        f"This CNN makes its test recordings worse than the noisy input (SI-SDR {cnn:.1f} dB vs {noisy:.1f} dB):\n"
        f"the lab's recipe's honest result on this data. `{nxt}` trains one that improves them."
    )


# how far a metric may move from the committed one and still be the same result computed with
# other rounding: CUDA's kernels, or CNN_DENOISE_NUMERICS=native on another CPU (the issue that
# pinned the kernels saw STOI move by 2e-6 relative, the history's L1 by 3e-9)
TOLERANCE = 1e-4


def _committed(path: str):
    """The file as the last commit holds it (text), or None (no git, not committed)."""
    try:
        done = subprocess.run(["git", "show", f"HEAD:./{path}"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def _outs(text: str) -> dict:
    stages = (yaml.safe_load(text) or {}).get("stages", {})
    return {o["path"]: o.get("md5") for stage in stages.values() for o in stage.get("outs", [])}


def _numbers(tree, prefix="") -> dict:
    if isinstance(tree, dict):
        return {k: v for key, sub in tree.items() for k, v in _numbers(sub, f"{prefix}{key}.").items()}
    return {prefix[:-1]: tree} if isinstance(tree, int | float) and not isinstance(tree, bool) else {}


def against_commit(lock: str = "dvc.lock", metrics: str = "metrics/eval.json") -> str | None:
    """One line: whether this run's outputs are the committed dvc.lock's bits and, if not, whether
    its metrics are the committed ones within TOLERANCE (relative). None outside a git repository."""
    old_lock, old_metrics = _committed(lock), _committed(metrics)
    if old_lock is None:
        return None
    before, now = _outs(old_lock), _outs(Path(lock).read_text())
    differ = sorted(p for p in before.keys() & now.keys() if before[p] != now[p])
    if not differ:
        return "Outputs: the same bits as the committed dvc.lock."
    named = ", ".join(differ[:3]) + (", ..." if differ[3:] else "")
    head = f"Outputs: {len(differ)} differ from the committed dvc.lock ({named})"
    if old_metrics is None:
        return head + "."
    was, is_ = _numbers(json.loads(old_metrics)), _numbers(json.loads(Path(metrics).read_text()))
    moved = [k for k in sorted(was.keys() & is_.keys()) if not math.isclose(was[k], is_[k], rel_tol=TOLERANCE)]
    if not moved:
        return f"{head}; metrics within {TOLERANCE:g} of the committed: other rounding (CUDA or unpinned kernels)."
    return f"{head}; metrics moved beyond {TOLERANCE:g}: " + ", ".join(
        f"{k} {was[k]:g} -> {is_[k]:g}" for k in moved[:3]
    )


def main(path="metrics/eval.json", measures_path="reports/measures.json", lock=None) -> int:
    """Print the summary; with `lock` (make repro: dvc.lock), also how this run's outputs compare
    with the committed ones."""
    m = json.loads(Path(path).read_text())
    tr, te = m["train"], m["test"]
    print(
        f"Lab 2B, Task 4: train L1 = {tr['l1']:.4e}, test L1 = {te['l1']:.4e} (mean absolute error); "
        f"the lab's L1 (sum over a recording): train {tr['l1_sum']:.4f}, test {te['l1_sum']:.4f}"
    )
    try:
        measures = json.loads(Path(measures_path).read_text())
    except (OSError, ValueError):
        return 0
    print("\n".join(table(measures)))
    print(MEANING)
    if line := verdict(measures):
        print(line)
    if lock is not None and (line := against_commit(lock, path)):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:], lock="dvc.lock"))
