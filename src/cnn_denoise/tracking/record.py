"""The team server's record, server.json: what `status` and `stop` trust of it. A file on disk
names PIDs; a process is the server's only when its PID, its start time and its command line
(which names the server's folder) all agree, so a stale or edited record never gets a stranger
signalled."""

import json
import os
import signal
import time
from pathlib import Path

from cnn_denoise.common.errors import PipelineError
from cnn_denoise.common.procs import pid_alive, same_process, started


def _ours(state: dict, key: str, folder: Path) -> bool:
    """Whether the record's `key` process (mlflow or postgres) is the one this folder's server
    started: the same PID and start time, and a command line that names this folder's files
    (a start time copied from another process does not make it ours)."""
    pid, start = state.get(f"{key}_pid"), state.get(f"{key}_started")
    if not same_process(pid, start):
        return False
    mark = folder / ("artifacts" if key == "mlflow" else "pgdata")
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return os.fsencode(mark) in args


def status(folder: Path) -> dict | None:
    """server.json when both of the processes it records are this folder's server and still run
    (_ours), else None."""
    state = _record(folder)
    return state if state and all(_ours(state, key, folder.resolve()) for key in ("mlflow", "postgres")) else None


def _record(folder: Path) -> dict:
    """server.json, if it is one: PIDs are whole numbers and start times text, or it is no
    record of ours (a hand-edited or foreign file) and names no process."""
    try:
        state = json.loads((folder / "server.json").read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(state, dict):
        return {}
    for key in ("mlflow", "postgres"):
        pid, start = state.get(f"{key}_pid"), state.get(f"{key}_started")
        if not (type(pid) is int and pid > 0 and (start is None or isinstance(start, str))):
            state[f"{key}_pid"] = None
    return state


def stop_pids(state: dict, own: bool = False) -> None:
    """MLflow's process group gets SIGTERM, PostgreSQL SIGINT (its fast shutdown); SIGKILL after
    30 s. Only the processes the record names (PID and start time): a PID the system has given
    to another process since is left alone. `own`: the caller's own children, just started,
    before a record was written (never what a file says)."""
    for key, sig in (("mlflow_pid", signal.SIGTERM), ("postgres_pid", signal.SIGINT)):
        pid = state.get(key)
        start = started(pid) if own else state.get(key.replace("_pid", "_started"))
        if not same_process(pid, start):
            continue
        try:
            os.killpg(pid, sig) if key == "mlflow_pid" else os.kill(pid, sig)
        except ProcessLookupError:
            continue
        deadline = time.monotonic() + 30
        while pid_alive(pid) and time.monotonic() < deadline:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            time.sleep(0.2)
        if pid_alive(pid):
            os.killpg(pid, signal.SIGKILL)


def stop(folder: Path) -> str | None:
    """Stop the server server.json records and remove the record; what happened, in words, or
    None when there is no record. A record whose processes have ended, or whose PIDs other
    processes hold now (other start times: a machine restarted), is stale: removed, nothing
    signalled. One naming a live process at its very start time that is not this folder's
    server (_ours: an edited record) is refused, and nothing is signalled."""
    folder = folder.resolve()
    state = _record(folder)
    if not state:
        return None
    live = []
    for key in ("mlflow", "postgres"):
        pid, start = state.get(f"{key}_pid"), state.get(f"{key}_started")
        if not same_process(pid, start):
            continue
        if not _ours(state, key, folder):
            raise PipelineError(
                f"{folder / 'server.json'} names pid {pid} as {key}, but that process is not this folder's "
                f"server (another program, or a record edited by hand); nothing was signalled: stop the server by "
                f"hand, or if it is gone remove {folder / 'server.json'}"
            )
        live.append(key)
    stop_pids(state)
    (folder / "server.json").unlink(missing_ok=True)
    return "stopped" if live else f"no server was running from {folder} (its record was stale; removed)"
