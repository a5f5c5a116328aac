"""make compare over a real SQLite store: differing params only, newest first, final metrics."""

import time

import pytest

from cnn_denoise import compare, tracking

pytestmark = pytest.mark.slow  # a real MLflow store: its schema takes seconds to create


def test_table_shows_what_differs_newest_first(sqlite_store, monkeypatch, capsys):
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", sqlite_store)
    mlflow.set_tracking_uri(tracking.tracking_uri())
    mlflow.set_experiment(tracking.EXPERIMENT)
    for taps, l1 in (("[40, 40]", 2.5e-4), ("[20, 20]", 2.0e-4)):
        with mlflow.start_run():
            mlflow.log_params({"model.taps": taps, "train.lr": "0.5"})
            mlflow.log_metrics({"test.l1": l1, "train.l1": l1 * 1.1})
        time.sleep(0.01)
    table, shared = compare.runs_table()
    assert list(table["model.taps"]) == ["[20, 20]", "[40, 40]"]  # newest first
    assert "train.lr" not in table.columns and shared == {"train.lr": "0.5"}
    assert list(table["test.l1"]) == [2.0e-4, 2.5e-4]
    assert compare.main([]) == 0
    out = capsys.readouterr().out
    assert "same in every run: train.lr=0.5" in out and "2.0000e-04" in out


def test_empty_store_says_so(sqlite_store, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", sqlite_store)
    assert compare.main([]) == 1
    assert "no runs" in capsys.readouterr().err
