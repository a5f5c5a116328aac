"""Where a run came from: the git commit, the DVC experiment, the data's params and hash.

Read from git and dvc.lock as DVC recorded them before the stage ran, so a run's tags say
which code and which data made its model; nothing from MLflow goes back into a DVC output.
"""

import os
import subprocess

import yaml

from cnn_denoise.common.urls import redact
from cnn_denoise.config.params import flatten
from cnn_denoise.tracking.store import project_root


def _git(*args) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=project_root(), capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def run_tags(lock: dict) -> dict[str, str]:
    """Where the run came from: git commit and dirtiness (ignoring the pipeline's own
    outputs), the DVC experiment's name, and the dataset's hash from `lock` (upstream_lock)."""
    tags = {}
    commit = _git("rev-parse", "HEAD")
    if commit:
        tags["git_commit"] = commit
        changes = _git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!dvc.lock", ":!metrics")
        tags["git_dirty"] = str(bool(changes))
    if os.environ.get("DVC_EXP_NAME"):
        tags["dvc_exp_name"] = os.environ["DVC_EXP_NAME"]
    if lock.get("dataset_md5"):
        tags["dataset_md5"] = lock["dataset_md5"]
    return tags


def upstream_lock() -> dict:
    """From dvc.lock: the params that made the data this model trained on (fetch, split)
    and the dataset zip's md5, exactly as DVC recorded them before this stage ran."""
    path = project_root() / "dvc.lock"
    try:
        stages = yaml.safe_load(path.read_text())["stages"]
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        return {}
    out = {"params": {}}
    for name in ("fetch", "split"):
        out["params"].update(flatten(stages.get(name, {}).get("params", {}).get("params.yaml", {})))
    if isinstance(out["params"].get("data.url"), str):
        out["params"]["data.url"] = redact(out["params"]["data.url"])  # no password or signed query in MLflow
    for item in stages.get("fetch", {}).get("outs", []):
        if item.get("path", "").endswith(".zip"):
            out["dataset_md5"] = item.get("md5")
    return out


def committed_params() -> dict:
    """params.yaml as the last commit holds it (the lab's recipe, unless the commit changed it),
    flattened; {} outside git. An experiment's params.yaml is the workspace's, rewritten by DVC."""
    text = _git("show", "HEAD:params.yaml")
    try:
        tree = yaml.safe_load(text) if text else None
    except yaml.YAMLError:
        return {}
    return flatten(tree) if isinstance(tree, dict) else {}


def run_name(tags: dict) -> str:
    """The DVC experiment's name, else where the run came from: workspace@<commit>[+changes]."""
    if tags.get("dvc_exp_name"):
        return tags["dvc_exp_name"]
    commit = tags.get("git_commit", "")[:7]
    return f"workspace@{commit}{'+changes' if tags.get('git_dirty') == 'True' else ''}" if commit else "workspace"
