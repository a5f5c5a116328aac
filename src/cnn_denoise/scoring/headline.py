"""A scores JSON read per system: means per noise kind and over every set, the best peer on each
measure, and the three headline lines that bench/unseen.py writes into its JSON and that the
shipped model's card and the top of docs/results.md quote. One reading for all of them, so the
doc's tables and the headline cannot disagree.

A scores JSON is scoring/matrix.py's (bench/unseen.py's too): {"systems": {"baselines", "peers",
"models"}, "sets": {set: {"kind", "snr_db", system: measures}}}; eval.json's "sets" read the
same (their rows name the kind "noise", and the CNN "cnn").
"""

import math

# what every comparison shows, in this order; then the real-time factor
MEASURES = {
    "si_sdr_gain_db": "SI-SDR gain over the noisy input (dB)",
    "pesq_wb": "PESQ-WB",
    "dnsmos_ovrl": "DNSMOS OVRL",
    "dnsmos_sig": "DNSMOS SIG",
    "dnsmos_bak": "DNSMOS BAK",
    "stoi": "STOI",
}
RTF = "rtf"
HEADLINE = {"si_sdr_gain_db": ("SI-SDR gain", "{:+.2f} dB"), "pesq_wb": ("PESQ-WB", "{:.2f}"),
            "dnsmos_ovrl": ("DNSMOS OVRL", "{:.2f}")}  # fmt: skip


def kind(row: dict) -> str:
    return row.get("kind", row.get("noise", "?"))


def systems(scores: dict) -> list[str]:
    """The systems of a scores JSON in their order (baselines, peers, models), else as its rows hold them."""
    listed = scores.get("systems")
    if listed:
        return [*listed.get("baselines", []), *listed.get("peers", []), *listed.get("models", [])]
    first = next(iter(scores["sets"].values()), {})
    return [k for k, v in first.items() if isinstance(v, dict)]


def peers(scores: dict) -> list[str]:
    """The peers that were scored (eval.json, which does not list them: those of peers.PEERS in its rows)."""
    if scores.get("systems"):
        return list(scores["systems"].get("peers", []))
    from cnn_denoise.peers import PEERS

    return [s for s in systems(scores) if s in PEERS]


def value(row: dict, system: str, measure: str) -> float | None:
    """One system's measure on one set; the SI-SDR gain from the SI-SDRs where not stored (older JSONs)."""
    m = row[system]
    if measure == "si_sdr_gain_db" and measure not in m:
        a, b = m.get("si_sdr_db"), row["noisy"].get("si_sdr_db")
        return None if a is None or b is None else a - b
    return m.get(measure)


def mean(values) -> float | None:
    """The mean of the values that were measured (PESQ finds no speech in silence: None), else None."""
    kept = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return sum(kept) / len(kept) if kept else None


def by_kind(scores: dict, system: str, measure: str) -> dict:
    """{noise kind: the mean over its sets (SNR bands), ..., "mean": over every set}."""
    rows = list(scores["sets"].values())
    kinds = dict.fromkeys(kind(r) for r in rows)
    out = {k: mean(value(r, system, measure) for r in rows if kind(r) == k) for k in kinds}
    out["mean"] = mean(value(r, system, measure) for r in rows)
    return out


def best_peer(scores: dict, measure: str) -> tuple[str, float] | None:
    """(peer, its mean over every set) of the peer ahead on `measure` (higher is better), or None."""
    means = [(p, by_kind(scores, p, measure)["mean"]) for p in peers(scores)]
    means = [(p, v) for p, v in means if v is not None]
    return max(means, key=lambda pv: pv[1]) if means else None


def headline(scores: dict, model: str, where: str = "") -> list[str]:
    """Three lines: `model`'s mean SI-SDR gain, PESQ-WB and DNSMOS OVRL over every set (`where`:
    what the sets are, after the measure's name), against the noisy input's and the best peer's."""
    lines = []
    for measure, (label, form) in HEADLINE.items():
        ours, noisy = by_kind(scores, model, measure)["mean"], by_kind(scores, "noisy", measure)["mean"]
        shown = [form.format(v) if v is not None else "-" for v in (ours, noisy)]
        best = best_peer(scores, measure)
        if best is None:
            against = "no peer ran"
        else:
            lead = None if ours is None else ours - best[1]
            by = form.format(abs(lead)).lstrip("+") if lead is not None else ""
            side = "-" if lead is None else f"{model} {by} {'ahead' if lead >= 0 else 'behind'}"
            against = f"best peer {best[0]} {form.format(best[1])} ({side})"
        lines.append(f"{label}{where}: {model} {shown[0]}, noisy input {shown[1]}; {against}")
    return lines


def rows(scores: dict, shown: list[str], measure: str) -> list[list]:
    """[[noise kind, each system's mean over its sets], ..., ["mean", over every set]]: a table's body."""
    means = {s: by_kind(scores, s, measure) for s in shown}
    return [[k, *(means[s][k] for s in shown)] for k in means[shown[0]]] if shown else []
