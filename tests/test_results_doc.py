"""docs/results.py: the team section names how each sweep ran, from bench/team.json as it is."""

import importlib.util
import json
from pathlib import Path

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
    text, scored = results.unseen_section("abc1234")
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
    text, scored = results.unseen_section("abc1234")
    assert not scored and len(calls) == 1
    assert text.splitlines()[2] == (
        "Not scored: `bench/unseen.py --babble english` failed (exit 1) at `abc1234`. "
        "Fix it, then run `python docs/results.py --matrix-only`."
    )

    monkeypatch.setattr(results, "available", lambda model: False)
    calls.clear()
    text, scored = results.unseen_section("abc1234")
    assert scored and not calls and "`make recipe NAME=speech`" in text and len(text.strip().splitlines()) == 3
