"""End to end: the real `dvc repro` in a temporary copy of the repository, on a small dataset."""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest
import torch
from helpers import SMALL, make_project, ran, set_params, sh

from cnn_denoise.common.hashing import sha256_file

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A git repository holding the project's tracked files, with small data and 2 epochs."""
    repo, env = make_project(tmp_path_factory.mktemp("project"))
    return repo, env, sh(["dvc", "repro"], repo, env)


def test_repro_runs_every_stage_and_writes_the_metrics(project):
    repo, env, first = project
    assert ran(first) == ["fetch", "unzip", "split", "train", "baselines", "evaluate"]
    metrics = json.loads((repo / "metrics/eval.json").read_text())
    full = json.loads((repo / "reports/measures.json").read_text())
    assert set(metrics) == {"train", "test", "linear"} and set(metrics["train"]) == {"l1", "l1_sum"}
    for split in ("train", "test"):
        assert set(full[split]) >= {"l1", "l1_sum", "mse"}
        assert metrics[split]["l1"] == full[split]["l1"]
        assert metrics[split]["l1_sum"] == pytest.approx(metrics[split]["l1"] * SMALL["samples"], rel=1e-5)
    assert metrics["linear"] == {k: full["baselines"]["linear"][k] for k in ("l1_sum", "si_sdr_db")}
    shown_values = [
        v for part in metrics.values() for v in part.values() if v is not None
    ]  # STOI: null on recordings this short
    assert all(round(v, 5) != 0 for v in shown_values), metrics  # none reads 0.0 in dvc metrics show
    shown = json.loads(sh(["dvc", "metrics", "show", "--json"], repo, env).stdout)
    assert shown[""]["data"]["metrics/eval.json"]["data"]["test"] == {
        k: v for k, v in metrics["test"].items() if v is not None
    }
    table = sh(["dvc", "metrics", "show"], repo, env).stdout
    assert max(map(len, table.splitlines())) <= 160, table
    history = (repo / "metrics/history.csv").read_text().splitlines()
    assert history[0] == "epoch,train_l1,test_l1" and len(history) == 1 + 3
    assert set(full["baselines"]) == {"zeros", "noisy", "linear", "lowpass"}
    assert full["baselines"]["noisy"]["snr_gain_db"] == 0 and full["baselines"]["zeros"]["si_sdr_db"] is None
    assert full["baselines"]["linear"]["l1"] < full["baselines"]["noisy"]["l1"]  # the linear filter denoises
    reports = {p.relative_to(repo / "reports").as_posix() for p in (repo / "reports").rglob("*") if p.is_file()}
    assert {
        "filters.png",
        "test0.png",
        "audio/test0_noisy.wav",
        "audio/test0_cnn.wav",
        "audio/test0_linear.wav",
    } <= reports


def test_stages_are_quiet_when_piped(project):
    """No warning a user cannot act on, no terminal colour codes in a pipe, lines a terminal shows."""
    repo, env, first = project
    out = first.stdout + first.stderr
    assert "Warning" not in out and "\x1b[" not in out, out
    assert max(map(len, out.splitlines())) <= 160, max(out.splitlines(), key=len)


def test_metrics_match_an_independent_recomputation(project):
    repo, _, _ = project
    from cnn_denoise.models import checkpoint as ckpt

    model = ckpt.load(repo / "models/model.pt", backend="shift")  # the other backend
    test = torch.load(repo / "data/split/test.pt", weights_only=True)
    with torch.no_grad():
        err = (model(test["x"]) - test["y"]).double()
    metrics = json.loads((repo / "reports/measures.json").read_text())
    assert metrics["test"]["l1"] == pytest.approx(err.abs().mean().item(), rel=1e-5)
    assert metrics["test"]["mse"] == pytest.approx(err.square().mean().item(), rel=1e-5)
    assert metrics["baselines"]["zeros"]["l1"] == pytest.approx(
        test["y"].double().abs().mean().item(), rel=1e-6
    )  # 6 digits kept


def test_mlflow_run_holds_params_history_and_final_metrics(project):
    repo, env, _ = project
    import mlflow

    from cnn_denoise import tracking

    mlflow.set_tracking_uri(f"sqlite:///{repo / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=[tracking.EXPERIMENT], output_format="list")
    experiment = mlflow.get_experiment_by_name(tracking.EXPERIMENT)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"  # the UI opens on its runs
    sha = sha256_file(repo / "models/model.pt")
    run = next(r for r in runs if r.data.tags.get("model_sha256") == sha)
    metrics = json.loads((repo / "reports/measures.json").read_text())
    assert run.data.metrics["test.l1"] == metrics["test"]["l1"] and run.info.status == "FINISHED"
    commit = sh(["git", "rev-parse", "HEAD"], repo, env).stdout.strip()
    assert run.info.run_name == f"workspace@{commit[:7]}"
    inputs = {d.dataset.name: d.dataset.digest for d in run.inputs.dataset_inputs}
    assert inputs == {name: sha256_file(repo / f"data/split/{name}.pt", "md5") for name in ("train", "test")}
    assert run.data.params["model.taps"] == "[40, 40]" and run.data.params["train.epochs"] == "2"
    client = mlflow.MlflowClient()
    history = client.get_metric_history(run.info.run_id, "epoch.train_l1")
    assert [m.step for m in history] == [0, 1, 2]
    baselines = {r.data.tags["baseline"]: r for r in runs if r.data.tags.get("kind") == "baseline"}
    assert set(baselines) == {"zeros", "noisy", "linear", "lowpass"}
    linear = baselines["linear"]
    assert linear.info.run_name == "baseline: linear (taps 79)" and linear.data.params == {"taps": "79"}
    assert (
        baselines["linear"].data.metrics["test.si_sdr_db"] == metrics["baselines"]["linear"]["si_sdr_db"]
    )  # one name, both kinds
    assert not any(k.startswith("baselines.") for k in run.data.metrics)  # not repeated in every CNN run
    assert "reports/filters.png" in {a.path for a in client.list_artifacts(run.info.run_id, "reports")}
    assert run.data.tags["git_commit"] == sh(["git", "rev-parse", "HEAD"], repo, env).stdout.strip()


def test_second_repro_runs_nothing_and_params_rerun_only_what_they_affect(project):
    repo, env, _ = project
    assert ran(sh(["dvc", "repro"], repo, env)) == []
    before = (repo / "data/split/test.pt").read_bytes()
    set_params(repo, **{"train.epochs": 1})
    assert ran(sh(["dvc", "repro"], repo, env)) == ["train", "evaluate"]  # the baselines stay: same data
    assert (repo / "data/split/test.pt").read_bytes() == before
    assert len((repo / "metrics/history.csv").read_text().splitlines()) == 1 + 2
    set_params(repo, **{"data.split_seed": 1})
    assert ran(sh(["dvc", "repro"], repo, env)) == ["split", "train", "baselines", "evaluate"]
    assert "up to date" in sh(["dvc", "status"], repo, env).stdout


def test_forced_rerun_is_bit_identical(project):
    repo, env, _ = project
    files = [
        "data/raw/dataset.zip",
        "data/pairs.pt",
        "data/split/train.pt",
        "models/model.pt",
        "metrics/eval.json",
        "metrics/history.csv",
        "reports/audio/test0_cnn.wav",
        "reports/filters.png",
    ]
    before = {f: (repo / f).read_bytes() for f in files}
    sh(["dvc", "repro", "-f"], repo, env)
    assert {f: (repo / f).read_bytes() for f in files} == before


def test_bad_params_fail_with_one_line_and_no_output(project):
    repo, env, _ = project
    set_params(repo, **{"train.lr": "fast"})
    try:
        proc = sh(["dvc", "repro", "train"], repo, env, check=False)
    finally:
        set_params(repo, **{"train.lr": 0.5})
    assert proc.returncode != 0
    assert (
        "error: params.yaml: train.lr: Input should be a valid number (got 'fast'); fix it in params.yaml"
        in proc.stderr
    )


def test_sigkill_midway_then_repro_completes_with_the_same_outputs(project):
    """Killed inside training (so many epochs that it cannot finish first: 400 took under 4 s),
    then repro at 400 epochs: the same outputs as training again from scratch."""
    repo, env, _ = project
    set_params(repo, **{"train.epochs": 100_000})
    proc = subprocess.Popen(
        ["dvc", "repro"],
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        for line in proc.stdout:
            if "Running stage 'train'" in line:
                break
        time.sleep(4)  # past start-up, inside the epoch loop
        assert proc.poll() is None, "training ended before it could be killed: raise the epochs"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert "epochs: 100000" not in (repo / "dvc.lock").read_text()  # nothing of the killed run recorded
    assert not list((repo / "models").glob(".*.tmp"))  # nor half written
    set_params(repo, **{"train.epochs": 400})
    sh(["dvc", "repro"], repo, env)
    resumed = {f: (repo / f).read_bytes() for f in ("models/model.pt", "metrics/eval.json", "metrics/history.csv")}
    assert len(resumed["metrics/history.csv"].decode().splitlines()) == 2 + 400  # header, epoch 0 (initial) .. 400
    sh(["dvc", "repro", "-f", "train"], repo, env)
    sh(["dvc", "repro", "evaluate"], repo, env)
    assert {f: (repo / f).read_bytes() for f in resumed} == resumed
    assert not list((repo / "models").glob(".*.tmp"))


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def chromium(*args, timeout=90):
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--virtual-time-budget=10000",
    ]
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [CHROMIUM, *flags, f"--user-data-dir={profile}", *args], capture_output=True, text=True, timeout=timeout
        )


def test_plots_page_is_self_contained(project):
    repo, env, _ = project
    sh(["dvc", "plots", "show", "-o", "plots_out"], repo, env)
    page = (repo / "plots_out" / "index.html").read_text()
    assert "cdn.jsdelivr" not in page and "<script src=" not in page  # nothing to fetch
    assert "vegaEmbed(" in page and "train_l1" in page and "test_l1" in page


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (make test installs it where it can)")
def test_plots_page_renders_offline_in_chromium(project, tmp_path):
    repo, env, _ = project
    sh(["dvc", "plots", "show", "-o", "plots_out"], repo, env)
    url = (repo / "plots_out" / "index.html").as_uri()
    dom = chromium("--dump-dom", url).stdout
    assert dom.count("<canvas") >= 1, dom[-2000:]  # vega-embed drew the chart
    shot = tmp_path / "plot.png"
    chromium(f"--screenshot={shot}", "--window-size=900,700", url)
    assert shot.stat().st_size > 10_000


def test_a_zip_replaced_in_sources_is_fetched_again_and_retrained(tmp_path):
    """data.url: sources/course.zip. Replacing that file (same path, new data) makes the next
    `dvc repro` fetch, unzip, split, train and evaluate again on the new data."""
    from cnn_denoise.lab import synth

    repo, env = make_project(tmp_path, **{"data.url": "sources/course.zip"})
    (repo / "sources" / "course.zip").write_bytes(synth.make_zip(SMALL["pairs"], SMALL["samples"], seed=1))
    first = sh(["dvc", "repro"], repo, env)
    assert "DVC does not watch" not in first.stderr
    model = (repo / "models/model.pt").read_bytes()
    pairs = torch.load(repo / "data/pairs.pt", weights_only=True)
    assert "Data and pipelines are up to date" in sh(["dvc", "status"], repo, env).stdout
    (repo / "sources" / "course.zip").write_bytes(synth.make_zip(SMALL["pairs"], SMALL["samples"], seed=2))
    again = sh(["dvc", "repro"], repo, env)
    assert ran(again) == ["fetch", "unzip", "split", "train", "baselines", "evaluate"]
    new_pairs = torch.load(repo / "data/pairs.pt", weights_only=True)
    assert not torch.equal(new_pairs["x"], pairs["x"]) and (repo / "models/model.pt").read_bytes() != model
    assert torch.equal(
        new_pairs["x"], torch.stack([x for x, _ in synth.make_pairs(SMALL["pairs"], SMALL["samples"], 2)])
    )


def test_a_source_outside_sources_says_how_to_refetch(tmp_path):
    from cnn_denoise.lab import synth

    outside = tmp_path / "elsewhere.zip"
    outside.write_bytes(synth.make_zip(SMALL["pairs"], SMALL["samples"], seed=1))
    repo, env = make_project(tmp_path / "project", **{"data.url": str(outside)})
    proc = sh(["dvc", "repro", "fetch"], repo, env)
    assert (
        f"fetch: DVC does not watch {outside} for changes: after it changes run `dvc repro -f fetch && dvc repro`"
        in proc.stderr
    )
