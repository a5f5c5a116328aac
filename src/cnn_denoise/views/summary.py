"""What `make repro` (after `dvc metrics show`) and `make exps` print: the lab's two
deliverables, then the CNN beside every baseline with what each baseline means, so a reader
knows which is the bar to beat and which is only a reference."""

import json
import sys
from pathlib import Path

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


def main(path="metrics/eval.json", measures_path="reports/measures.json") -> int:
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
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
