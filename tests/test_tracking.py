"""MLflow logging into a real SQLite store: one run per model, found again by the model's hash."""

import pytest
import torch

from cnn_denoise import model as cnn
from cnn_denoise import tracking


@pytest.fixture
def store(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("CNN_DENOISE_TRACKING", raising=False)
    return uri


def test_train_then_evaluate_share_one_run(store, tmp_path):
    import mlflow

    model = cnn.build([3, 2], [1, 2, 1], seed=0)
    path = tmp_path / "model.pt"
    cnn.save(model, path)
    history = [{"epoch": e, "train_l1": 1.0 / (e + 1), "test_l1": 2.0 / (e + 1)} for e in range(3)]
    tracking.log_training({"model.taps": "[3, 2]", "train.lr": "0.5"}, history, model, path)
    tracking.log_evaluation(path, {"train": {"l1": 0.25}, "test": {"l1": 0.5, "mse": 0.1}})

    mlflow.set_tracking_uri(store)
    runs = mlflow.search_runs(experiment_names=[tracking.EXPERIMENT], output_format="list")
    assert len(runs) == 1
    run = runs[0]
    assert run.data.params == {"model.taps": "[3, 2]", "train.lr": "0.5"}
    assert run.data.tags["model_sha256"] == tracking.file_sha256(path)
    assert run.data.metrics["test.l1"] == 0.5 and run.data.metrics["train.l1"] == 0.25
    steps = mlflow.MlflowClient().get_metric_history(run.info.run_id, "epoch.test_l1")
    assert [(m.step, m.value) for m in steps] == [(0, 2.0), (1, 1.0), (2, 2.0 / 3)]
    logged = mlflow.pytorch.load_model(f"runs:/{run.info.run_id}/model")
    x = torch.randn(2, 1, 300)
    torch.testing.assert_close(logged(x), model(x))


def test_failure_is_one_line_and_keeps_going(monkeypatch, capsys):
    monkeypatch.setenv("CNN_DENOISE_TRACKING", "warn")

    def broken():
        raise ConnectionError("server at 127.0.0.1:9 refused\nmore detail")

    assert tracking.guarded("logging training", broken) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "MLflow tracking failed while logging training" in err and "refused" in err
    monkeypatch.setenv("CNN_DENOISE_TRACKING", "require")
    assert tracking.guarded("logging training", broken) == 1
    monkeypatch.setenv("CNN_DENOISE_TRACKING", "off")
    assert tracking.guarded("logging training", broken) == 0


def test_default_store_is_sqlite_at_the_project_root(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / "stages").mkdir()
    monkeypatch.chdir(tmp_path / "stages")
    assert tracking.tracking_uri() == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
