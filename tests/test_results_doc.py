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
