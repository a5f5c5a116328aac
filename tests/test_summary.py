import json

from cnn_denoise.views import summary

MEASURES = {
    "test": {"l1": 2.54e-4, "si_sdr_db": -14.72, "stoi": 0.907},
    "baselines": {
        "zeros": {"l1": 1.0e-4, "si_sdr_db": None, "stoi": None},
        "noisy": {"l1": 1.38e-4, "si_sdr_db": -4.57, "stoi": 0.935},
        "linear": {"l1": 5.6e-7, "si_sdr_db": 43.73, "stoi": 0.995},
        "lowpass": {"l1": 8.5e-8, "si_sdr_db": 54.97, "stoi": 0.955},
    },
}


def test_prints_the_deliverables_every_baseline_with_its_meaning_and_a_plain_verdict(tmp_path, capsys):
    path, measures = tmp_path / "eval.json", tmp_path / "measures.json"
    path.write_text(json.dumps({"train": {"l1": 2.5e-4, "l1_sum": 8.0}, "test": {"l1": 2.4e-4, "l1_sum": 7.68}}))
    measures.write_text(json.dumps(MEASURES))
    assert summary.main(str(path), str(measures)) == 0
    out = capsys.readouterr().out
    assert "train L1 = 2.5000e-04, test L1 = 2.4000e-04" in out and "train 8.0000, test 7.6800" in out
    lines = out.splitlines()
    low = next(line for line in lines if line.startswith("ideal low-pass"))
    assert "54.97" in low and "upper reference, not a competitor" in low
    assert "bar to beat" in next(line for line in lines if line.startswith("least-squares filter"))
    assert "worse than the noisy input (SI-SDR -14.7 dB vs -4.6 dB)" in lines[-2] and "make recipe" in lines[-1]
    assert lines[-3] == summary.MEANING and "how close the output is to the clean speech" in lines[-3]
    assert "DNSMOS (enhance --score): how clean it sounds, no reference" in lines[-3]
    assert max(map(len, lines)) <= 160


def test_no_verdict_when_the_cnn_beats_its_input():
    better = {**MEASURES, "test": {"l1": 1e-6, "si_sdr_db": 30.0, "stoi": 0.99}}
    assert summary.verdict(better) is None


def _lock(model_md5: str) -> str:
    return (
        "schema: '2.0'\nstages:\n  train:\n    cmd: python stages/train.py\n    outs:\n"
        f"    - path: models/model.pt\n      hash: md5\n      md5: {model_md5}\n"
        "  evaluate:\n    cmd: python stages/evaluate.py\n    outs:\n"
        "    - path: reports\n      hash: md5\n      md5: 0123.dir\n"
    )


def test_make_repro_says_whether_the_run_matches_the_committed_lock(tmp_path, monkeypatch, capsys):
    """After `make repro`: the same bits, or which outputs differ and whether the metrics are the
    committed ones within the stated tolerance (other rounding) or moved beyond it."""
    import os
    import subprocess

    monkeypatch.chdir(tmp_path)
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    metrics = {"train": {"l1": 2.5e-4, "l1_sum": 8.0}, "test": {"l1": 2.4e-4, "l1_sum": 7.68, "stoi": None}}
    (tmp_path / "dvc.lock").write_text(_lock("aaaa"))
    (tmp_path / "eval.json").write_text(json.dumps(metrics))
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "run"]):
        subprocess.run(cmd, check=True, capture_output=True, env={**os.environ, **env})
    assert summary.against_commit("dvc.lock", "eval.json") == "Outputs: the same bits as the committed dvc.lock."
    (tmp_path / "dvc.lock").write_text(_lock("bbbb"))
    metrics["test"]["l1"] *= 1 + 0.5 * summary.TOLERANCE  # another device's rounding
    (tmp_path / "eval.json").write_text(json.dumps(metrics))
    line = summary.against_commit("dvc.lock", "eval.json")
    assert line.startswith("Outputs: 1 differ from the committed dvc.lock (models/model.pt)"), line
    assert "metrics within 0.0001 of the committed" in line, line
    metrics["test"]["l1"] = 2.5e-4  # a real change
    (tmp_path / "eval.json").write_text(json.dumps(metrics))
    line = summary.against_commit("dvc.lock", "eval.json")
    assert "metrics moved beyond 0.0001: test.l1 0.00024 -> 0.00025" in line, line
    measures = tmp_path / "measures.json"
    measures.write_text(json.dumps(MEASURES))
    monkeypatch.setattr(summary, "against_commit", lambda lock, metrics: f"compared {lock} {metrics}")
    assert summary.main("eval.json", str(measures), lock="dvc.lock") == 0
    assert capsys.readouterr().out.splitlines()[-1] == "compared dvc.lock eval.json"
