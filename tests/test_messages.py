"""Messages that say what is wrong (issue 38, class 10): text from a checkpoint never reaches
the terminal raw, files that cannot be opened are named for what they are, a search's section
is bounded while it is read, and no "unexpected ... report it" for input that is merely bad.
Through the real commands (`cnn-denoise`, `python -m cnn_denoise.tune`, DVC's own process)."""

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from helpers import REPO, model_settings

CLI = [sys.executable, "-c", "from cnn_denoise.cli import main; main()"]
TUNE = [sys.executable, "-m", "cnn_denoise.tune"]
ESCAPES = "\x1b]0;owned\x07\x1b[2J\x1b[31m\x9b1m"  # retitle, clear the screen, red, an 8-bit CSI


def run(cmd, cwd, timeout=120, **env):
    full = dict(os.environ, CNN_DENOISE_TRACKING="off", **env)
    full.pop("OPTUNA_STORAGE", None)
    return subprocess.run(cmd, cwd=cwd, env=full, capture_output=True, text=True, timeout=timeout, errors="replace")


def one_line(proc, *said):
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: "), proc.stderr
    assert "unexpected" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    for text in said:
        assert text in proc.stderr, proc.stderr


def checkpoint(path: Path, **audio) -> Path:
    from cnn_denoise.models import checkpoint as ckpt
    from cnn_denoise.models import model as cnn

    model = cnn.build(model_settings([3], [1, 1]), seed=0)
    ckpt.save(model, path, {"sample_rate": 16000, "input_rms": 0.1, **audio})
    return path


def wav(path: Path) -> Path:
    sf.write(path, np.random.default_rng(0).normal(0, 0.1, 1600), 16000)
    return path


# ---- a checkpoint's text ----


@pytest.mark.slow
def test_escape_sequences_in_a_checkpoint_are_shown_escaped(tmp_path):
    about = {"speech": f"speech{ESCAPES}", "kinds": [f"hum{ESCAPES}"], "level_db": f"-20{ESCAPES}"}
    model = checkpoint(tmp_path / "m.pt", trained_on=about, test_si_sdr_db=1.0, noisy_si_sdr_db=5.0)
    info = run([*CLI, "info", str(model)], tmp_path)
    assert info.returncode == 0, info.stderr
    assert "\x1b" not in info.stdout and "\x07" not in info.stdout and "\x9b" not in info.stdout, info.stdout
    assert "speech\\x1b]0;owned\\x07" in info.stdout and "note:" in info.stdout  # shown, harmless
    out = tmp_path / "out"
    enhance = run([*CLI, "enhance", str(wav(tmp_path / "a.wav")), "-o", str(out), "-m", str(model)], tmp_path)
    assert enhance.returncode == 0 and "note:" in enhance.stderr, enhance.stderr
    assert "\x1b" not in enhance.stderr and "\x07" not in enhance.stderr, enhance.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    "audio, said",
    [
        ({"trained_on": "speech"}, "trained_on is a str, expected a mapping"),
        ({"trained_on": {"snr_db": "loud"}}, "trained_on.snr_db is a str"),
        ({"trained_on": {"kinds": [1, 2]}}, "trained_on.kinds is a list"),
        ({"trained_on": {"kind_weights": [1]}}, "trained_on.kind_weights"),
        ({"test_si_sdr_db": "high", "noisy_si_sdr_db": 1.0}, "test_si_sdr_db is a str"),
    ],
)
def test_a_record_of_the_wrong_type_is_one_line(tmp_path, audio, said):
    proc = run([*CLI, "info", str(checkpoint(tmp_path / "m.pt", **audio))], tmp_path)
    one_line(proc, said, "not a usable model checkpoint")


class Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.slow
def test_a_pickle_checkpoint_is_said_to_be_one_and_not_loaded(tmp_path):
    marker = tmp_path / "ran"
    torch.save({"spec": Exploit(marker), "state_dict": {}}, tmp_path / "evil.pt")
    proc = run([*CLI, "info", str(tmp_path / "evil.pt")], tmp_path)
    one_line(proc, "not a weights-only one", "so it is not loaded")
    assert "weights_only=False" not in proc.stderr and "can still be loaded" not in proc.stderr
    assert not marker.exists()


@pytest.mark.slow
def test_a_fifo_as_the_model_is_refused_at_once(tmp_path):
    os.mkfifo(tmp_path / "model.pt")
    start = time.monotonic()
    proc = run([*CLI, "info", str(tmp_path / "model.pt")], tmp_path, timeout=60)
    one_line(proc, "is not a regular file")
    assert time.monotonic() - start < 60


@pytest.mark.slow
def test_a_file_name_that_is_not_utf8_is_named_as_such(tmp_path):
    name = os.fsdecode(b"caf\xe9.wav")  # Latin-1: not UTF-8
    os.rename(wav(tmp_path / "a.wav"), os.fsencode(tmp_path) + b"/caf\xe9.wav")
    model = checkpoint(tmp_path / "m.pt")
    for given in (tmp_path / name, tmp_path):
        proc = run([*CLI, "enhance", str(given), "-o", str(tmp_path / "out"), "-m", str(model)], tmp_path)
        one_line(proc, "the name is not UTF-8 text", "rename it", "caf\\udce9.wav")
        assert "not a readable WAV" not in proc.stderr and not (tmp_path / "out").exists()


# ---- a search ----


def search_project(tmp_path: Path, search: dict) -> Path:
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    (tmp_path / "dvc.yaml").write_text((REPO / "dvc.yaml").read_text())
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "eval.json").write_text((REPO / "metrics" / "eval.json").read_text())
    (tmp_path / "recipes").mkdir()
    recipe = {"description": "x", "params": {}, "search": {"trials": 2, **search}}
    (tmp_path / "recipes" / "s.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    return tmp_path


@pytest.mark.slow
@pytest.mark.parametrize(
    "choices, said",
    [
        ("".join(f"\n      - {i}" for i in range(1_000_000)), "characters long, more than 1048576"),  # 11 MB
        ("[" + ",".join(["0"] * 150_000) + "]", "holds more than 100000 values"),  # 300 kB, 150,001 nodes
    ],
)
def test_a_huge_choice_list_is_refused_while_it_is_read(tmp_path, choices, said):
    """No alias in it, so not a word about aliases; refused before it is built whole."""
    root = search_project(tmp_path, {"params": {"train.lr": {"low": 0.1, "high": 1.0}}})
    head = "description: x\nparams: {}\nsearch:\n  trials: 2\n  params:\n    train.seed:\n      choices: "
    (root / "recipes" / "s.yaml").write_text(head + choices + "\n")
    start = time.monotonic()
    proc = run([*TUNE, "run", "s"], root)
    one_line(proc, "s.yaml", said, "shorten it")
    assert "alias" not in proc.stderr and time.monotonic() - start < 60, proc.stderr
    assert not (root / "optuna.db").exists()


def test_a_step_too_small_to_move_is_refused_before_any_trial(tmp_path):
    root = search_project(tmp_path, {"params": {"train.lr": {"low": 0.1, "high": 1.0, "step": 1e-300}}})
    proc = run([*TUNE, "run", "s"], root)
    one_line(proc, "step 1e-300 makes more than 1000000 values", "take a larger step")
    assert not (root / "optuna.db").exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    "url, said",
    [
        ("postgresql+psycopg2://ann:pw/QZ@[::1/optuna", "cannot be reached"),
        ("sqlite:///{tmp}/missing/optuna.db", "missing does not exist"),
        ("sqlite:///{tmp}/optuna.db", "optuna.db does not exist"),
    ],
)
def test_tune_report_of_a_storage_that_is_not_there(tmp_path, url, said):
    """A malformed IPv6 address, a SQLite file in a missing folder, a SQLite file that does
    not exist: one line each; no folder or database is made to find out."""
    root = search_project(tmp_path, {"params": {"train.lr": {"low": 0.1, "high": 1.0}}})
    url = url.format(tmp=tmp_path)
    proc = run([*TUNE, "report", "s", "--storage", url], root)
    one_line(proc, said)
    assert "QZ" not in proc.stderr
    assert not (tmp_path / "missing").exists() and not (tmp_path / "optuna.db").exists()


# ---- the run-cache guard ----


@pytest.mark.parametrize("internal", ["_load", "_get_cache_dir", "_load_cache", "_get_stage_hash"])
def test_the_run_cache_guard_checks_each_dvc_internal_it_relies_on(internal):
    """A DVC whose StageCache lacks (or changed) any one of the four internals the guard calls
    stays unguarded, with one line naming it, instead of failing in the middle of a sweep."""
    where = "m" if internal == "_get_stage_hash" else "m.StageCache"
    code = (
        "import sys; sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != '_Guard']\n"
        "import dvc.stage.cache as m\n"
        f"setattr({where}, {internal!r}, lambda *a, **k: None)\n"
        "from cnn_denoise.recipes import runcache; runcache.install()\n"
        "print(hasattr(m.StageCache._load, '__wrapped__'))\n"
    )
    proc = run([sys.executable, "-c", code], REPO)
    assert proc.stdout == "False\n", proc.stdout + proc.stderr
    assert proc.stderr.startswith("warning: DVC's run cache left unguarded") and internal in proc.stderr, proc.stderr
