"""Plain helpers shared by the tests (fixtures live in conftest.py)."""

import io
import json
import os
import shutil
import subprocess
import sys
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def torch_bytes(obj) -> bytes:
    """What torch.save writes for obj."""
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def zip_of(path, members: dict[str, bytes]):
    """A deflated zip at path holding members {name: bytes}."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def free_port() -> int:
    from cnn_denoise.common.procs import free_port as free

    return free()


def wait_healthy(url: str, proc, seconds: float) -> bool:
    """Poll url/health until it answers 200 (True), or until proc exits or `seconds` pass (False)."""
    import time

    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    return True
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.5)


# ---- end-to-end helpers: a temporary copy of the project, driven through DVC's CLI ----

SMALL = {"pairs": 12, "samples": 2000}  # a dataset small enough for seconds-long runs
# The speech stages on tiny packages built by tests/debs.py, kept in the copy's sources/ (no apt-get)
SPEECH_SMALL = {
    "speech.source": "sources/speech",
    "speech.seconds": 0.25,
    "speech.train_segments": 8,
    "speech.test_segments": 4,
    "speech.matrix.segments": 2,
    "speech.matrix.bands": [[0.0, 10.0]],
}
STAGES = ("fetch", "unzip", "split", "train", "baselines", "evaluate")


def rest(url, endpoint, body=None, **query):
    """A call to an MLflow server's REST API: GET with query, or POST with a JSON body."""
    full = f"{url}/api/2.0/mlflow/{endpoint}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(full, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def sh(cmd, cwd, env, check=True):
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def set_params(repo: Path, **changes):
    params = yaml.safe_load((repo / "params.yaml").read_text())
    for dotted, value in changes.items():
        *parents, key = dotted.split(".")
        node = params
        for p in parents:
            node = node[p]
        node[key] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def ran(proc) -> list[str]:
    out = proc.stdout + proc.stderr
    return [s for s in STAGES if f"Running stage '{s}'" in out]


def sweep_repo(folder: Path, files: dict[str, str]) -> dict:
    """A git + DVC repository in folder holding params.yaml (the project's) and `files` {path: text}
    (a recipe, a stage script, dvc.yaml), committed; returns the environment to run it in: no
    DVC_/OMP_ variables (a sweep sets the thread share), this interpreter first on PATH, the src
    of this checkout on PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DVC_", "OMP_"))} | {"DVC_NO_ANALYTICS": "1"}
    env |= {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["PYTHONPATH"] = str(REPO / "src")
    write_params_copy(folder)
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "x"]):
        subprocess.run(cmd, cwd=folder, env=env, check=True, capture_output=True)
    return env


def write_params_copy(folder: Path, **changes) -> None:
    """params.yaml of the repository, with changes, written into folder."""
    shutil.copy(REPO / "params.yaml", folder / "params.yaml")
    set_params(folder, **changes)


def _speech_debs(folder: Path) -> dict:
    """tests/debs.py's packages in folder (built once per process); their sha256 params."""
    global _DEBS
    import debs

    if _DEBS is None:
        _DEBS = debs.voice_deb(), debs.music_deb()
    return debs.write_debs(folder, *_DEBS)


_DEBS = None


def make_project(repo: Path, **changes) -> tuple[Path, dict]:
    """Copy the tracked files (not outputs) into a new git repo with small data; return it and the env."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    for name in files:
        if (REPO / name).is_file() and not name.startswith(("metrics/", "dvc.lock", "bench/results")):
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, repo / name)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_", "CNN_DENOISE_"))}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
        CNN_DENOISE_TRACKING="require",
        MLFLOW_DISABLE_TELEMETRY="true",
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@t",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@t",
    )
    shas = _speech_debs(repo / "sources" / "speech")
    set_params(
        repo,
        **{f"data.synthetic.{k}": v for k, v in SMALL.items()},
        **{"data.test_size": 4, "train.epochs": 2, "train.batch_size": 4, **SPEECH_SMALL, **shas, **changes},
    )
    sh(["git", "init", "-q"], repo, env)
    sh(["git", "add", "-A"], repo, env)
    sh(["git", "commit", "-qm", "copy"], repo, env)
    return repo, env


def run_queue(repo: Path, env: dict, experiments: dict[str, list[str]], jobs: int, timeout: float = 500) -> str:
    """Queue each experiment {name: ["-S", "key=value", ...]}, `dvc queue start -j jobs`, wait
    until none is queued or running; every one must succeed. Returns `dvc queue status`."""
    import time

    for name, args in experiments.items():
        sh(["dvc", "exp", "run", "--queue", "-n", name, *args], repo, env)
    sh(["dvc", "queue", "start", "-j", str(jobs)], repo, env)
    deadline = time.monotonic() + timeout
    while True:
        status = sh(["dvc", "queue", "status"], repo, env).stdout
        if not any(word in status for word in ("Running", "Queued")):
            break
        assert time.monotonic() < deadline, status
        time.sleep(3)
    logs = "".join(
        sh(["dvc", "queue", "logs", n], repo, env, check=False).stdout[-3000:]
        for n in experiments
        if f"{n} " not in status
    )
    assert status.count("Success") == len(experiments), status + logs
    return status


def assert_runs_complete(client, experiment_id: str, names: dict[str, dict[str, str]]) -> None:
    """Each CNN run {name: {param: value}} is there once, FINISHED, with its params, a metric
    history of train.epochs + 1 steps, final metrics and its artifacts; no CNN run is left
    unfinished."""
    runs = client.search_runs([experiment_id], "tags.kind = 'cnn'", max_results=100)
    assert all(r.info.status == "FINISHED" for r in runs), [(r.info.run_name, r.info.status) for r in runs]
    by_name = {}
    for r in runs:
        by_name.setdefault(r.info.run_name, []).append(r)
    for name, params in names.items():
        assert len(by_name.get(name, [])) == 1, (name, sorted(by_name))
        run = by_name[name][0]
        assert {k: run.data.params.get(k) for k in params} == params, name
        history = client.get_metric_history(run.info.run_id, "epoch.test_l1")
        assert sorted(m.step for m in history) == list(range(int(run.data.params["train.epochs"]) + 1)), name
        assert {"test.l1", "test.si_sdr_db"} <= set(run.data.metrics), name
        top = {f.path for f in client.list_artifacts(run.info.run_id)}
        assert {"checkpoint", "plots", "reports"} <= top, (name, top)
        models = client.search_logged_models([experiment_id], filter_string=f"source_run_id = '{run.info.run_id}'")
        assert [m.name for m in models] == ["model"], name  # MLflow 3 keeps the logged model beside the run's artifacts
        assert "checkpoint/model.pt" in {f.path for f in client.list_artifacts(run.info.run_id, "checkpoint")}, name


def lab_settings(section: str, **changes):
    """params.yaml's `section` (model or train) as its schema object, with `changes`: what
    model.build and train.fit take whole."""
    from cnn_denoise.config import params

    lab = params.load(REPO / "params.yaml")
    return getattr(lab, section).model_copy(update=changes)


def model_settings(taps, features, last_activation="tanh", input_scale=1.0, backend="auto"):
    """A params.Model for build(): taps [K_1..K_L], features [F_0..F_L]."""
    return lab_settings("model", taps=taps, features=features, last_activation=last_activation,
                        input_scale=input_scale, backend=backend)  # fmt: skip


def train_settings(**changes):
    """The lab's train section with `changes` (lr, batch_size, epochs, seed, optimizer, loss, ...)."""
    return lab_settings("train", **changes)


def si_sdr_numpy(pred: np.ndarray, y: np.ndarray) -> float:
    """An oracle for the SI-SDR in dB (NumPy, not the project's): the mean over recordings of
    10 log10(|a y|^2 / |a y - pred|^2), a the least-squares scale."""
    out = []
    for p, t in zip(pred, y, strict=True):
        a = np.dot(p, t) / np.dot(t, t)
        out.append(10 * np.log10(np.sum((a * t) ** 2) / np.sum((a * t - p) ** 2)))
    return float(np.mean(out))


def encode(path: Path, samples: np.ndarray, rate: int, codec: str = "libmp3lame", bit_rate: int = 192_000) -> Path:
    """A recording (n, channels) float in [-1, 1] encoded with PyAV's encoders (FFmpeg's: MP3
    through LAME, Opus, AAC...), in the container its suffix names, frame by frame."""
    import av

    x = np.ascontiguousarray(np.asarray(samples, dtype=np.float32).reshape(len(samples), -1).T)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.bit_rate, stream.layout = bit_rate, {1: "mono", 2: "stereo"}[x.shape[0]]
        stream.format = next(f for f in ("fltp", "flt", "s16") if f in {s.name for s in stream.codec.audio_formats})
        planar = stream.format.is_planar
        size, pts = 960 if codec == "libopus" else 1152 if "mp3" in codec else 1024, 0
        for a in range(0, x.shape[1], size):
            block = x[:, a : a + size]
            if stream.format.name == "s16":
                block = np.round(block * 32767).astype(np.int16)
            frame = av.AudioFrame.from_ndarray(
                block if planar else np.ascontiguousarray(block.T.reshape(1, -1)),
                format=stream.format.name,
                layout=stream.layout.name,
            )
            frame.sample_rate, frame.pts = rate, pts
            pts += block.shape[1]
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


# The speech stages in order, with the paths dvc.yaml gives them: corpus, then the sets and the matrix.
SPEECH_STAGES = (
    ("speech_fetch", "data/speech/debs"),
    ("speech_corpus", "data/speech/debs", "data/speech/corpus"),
    (
        "speech_mix",
        "train",
        "data/speech/corpus",
        "data/speech/train.pt",
        "data/speech/test.pt",
        "data/speech/split.json",
    ),
    ("speech_mix", "matrix", "data/speech/corpus", "data/speech/matrix"),
)


def speech_stages(stage, cwd) -> None:
    """Run the speech stages in `cwd` through the `stage` fixture, each expected to succeed."""
    for name, *args in SPEECH_STAGES:
        proc = stage(name, *args, cwd=cwd)
        assert proc.returncode == 0, proc.stderr
