"""make compare over a real SQLite store: one row per run, within 160 columns."""

import time

import pytest

from cnn_denoise import tracking
from cnn_denoise.views import compare

pytestmark = pytest.mark.slow  # a real MLflow store: its schema takes seconds to create


def test_one_row_per_run_with_its_name_kind_differing_params_and_headline(sqlite_store, monkeypatch, capsys):
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", sqlite_store)
    mlflow.set_tracking_uri(tracking.tracking_uri())
    mlflow.set_experiment(tracking.EXPERIMENT)
    wide = {f"model.knob_{i:02d}_with_a_long_name": "x" * 20 for i in range(12)}  # more than 160 columns of params
    with mlflow.start_run(run_name="baseline: linear (79 taps)", tags={"kind": "baseline"}):
        mlflow.log_params({"taps": "79"})
        mlflow.log_metrics({"test.l1": 1.0e-4, "test.si_sdr_db": 43.7})
    for name, taps, l1 in (("lab", "[40, 40]", 2.5e-4), ("narrow", "[20, 20]", 2.0e-4)):
        time.sleep(0.01)
        with mlflow.start_run(run_name=name, tags={"kind": "cnn"}):
            mlflow.log_params({"model.taps": taps, "train.lr": "0.5", **{k: v + taps for k, v in wide.items()}})
            mlflow.log_metrics(
                {"test.l1": l1, "test.si_sdr_db": -14.7, "test.stoi": 0.9, "sets.white_5to20dB.cnn.si_sdr_db": 3.5}
            )
    rows, metrics = compare.runs_rows()
    assert [r["name"] for r in rows] == ["narrow", "lab", "baseline: linear (79 taps)"]  # newest first
    assert [r["kind"] for r in rows] == ["CNN", "CNN", "baseline"] and rows[2]["params"] == {}
    assert metrics == ["test.l1", "test.si_sdr_db", "test.stoi", "sets.white_5to20dB.cnn.si_sdr_db"]
    assert compare.main([]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(map(len, lines)) <= 160
    header = lines[1]
    assert header.split()[:4] == ["run", "kind", "knob_00_with_a_long_name", "knob_01_with_a_long_name"]
    assert " lr " not in header and "taps" not in header  # lr: the same in every CNN run; taps: did not fit
    assert header.index("test L1") < header.index("SI-SDR dB") < header.index("STOI") < header.index("white_5to20dB dB")
    assert lines[-1].startswith("(also differ: ") and "knob_02_with_a_long_name" in lines[-1]
    baseline = next(line for line in lines if line.startswith("baseline: linear (79 taps)"))
    assert "43.7" in baseline and "[40, 40]" not in baseline


def test_empty_store_says_so(sqlite_store, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", sqlite_store)
    assert compare.main([]) == 1
    assert "no runs" in capsys.readouterr().err


def test_peers_are_baseline_runs_under_the_cnn_runs_names_once_per_matrix(sqlite_store, monkeypatch, capsys):
    """evaluate.sets' peers (tracking.log_set_baselines): a run each, tagged baseline, with its
    own scores under the CNN run's per-set names, logged once per matrix and version; make compare
    shows its per-set SI-SDR in the CNN runs' columns."""
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", sqlite_store)
    monkeypatch.delenv("CNN_DENOISE_TRACKING", raising=False)
    row = {"noise": "white", "snr_db": [0.0, 10.0], "cnn": {"si_sdr_db": 3.5}, "noisy": {"si_sdr_db": 1.0}}
    row["rnnoise"] = {"si_sdr_db": 8.25, "pesq_wb": 1.9, "rtf": 0.01, "stoi": None}
    row["dtln"] = {"si_sdr_db": 9.5, "dnsmos_ovrl": 2.7, "rtf": 0.2}
    sets = {"white_0to10dB": row}
    settings = {"rnnoise": {"version": "0.4.5"}, "dtln": {"version": "0.1.6"}}
    for _ in range(2):  # the second time: the same matrix and versions, nothing new
        tracking.log_set_baselines(sets, settings, "matrix-a")
    mlflow.set_tracking_uri(tracking.tracking_uri())
    logged = mlflow.search_runs(experiment_names=[tracking.EXPERIMENT], output_format="list")
    runs = {r.info.run_name: r for r in logged}
    assert sorted(runs) == ["baseline: dtln (version 0.1.6)", "baseline: rnnoise (version 0.4.5)"]
    rnnoise = runs["baseline: rnnoise (version 0.4.5)"]
    assert rnnoise.data.tags["kind"] == "baseline" and rnnoise.data.params == {"version": "0.4.5"}
    assert rnnoise.data.metrics == {
        "sets.white_0to10dB.cnn.si_sdr_db": 8.25,
        "sets.white_0to10dB.cnn.pesq_wb": 1.9,
        "sets.white_0to10dB.cnn.rtf": 0.01,
    }
    tracking.log_set_baselines(sets, {"rnnoise": {"version": "0.4.6"}}, "matrix-a")  # a new version: a new run
    tracking.log_set_baselines(sets, settings, "matrix-b")  # another matrix: new runs
    assert len(mlflow.search_runs(experiment_names=[tracking.EXPERIMENT], output_format="list")) == 5
    assert compare.main([]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "white_0to10dB dB" in lines[1]
    column = lines[1].index("white_0to10dB dB")
    dtln = next(line for line in lines if line.startswith("baseline: dtln (version 0.1.6)"))
    assert dtln[column:].split()[0] == "9.5" and dtln.split()[-1] == "9.5"
