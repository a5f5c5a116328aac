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
