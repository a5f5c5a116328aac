"""Processes and ports: the small helpers the team server and the run reaper share."""

import os
import socket
from pathlib import Path


def pid_alive(pid) -> bool:
    """Whether a process with this PID runs; a zombie (exited, not yet waited for) counts as gone."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def started(pid) -> str | None:
    """When the process `pid` started (clock ticks since boot, /proc/<pid>/stat field 22), or
    None if it is gone. A PID alone is reused by the system; a PID with its start time is one
    process, so a stale record never names a stranger."""
    try:
        return Path(f"/proc/{int(pid)}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, ValueError, IndexError, TypeError):
        return None


def same_process(pid, start: str | None) -> bool:
    """Whether `pid` is still the process that started at `start` (and alive, not a zombie)."""
    return bool(start) and pid_alive(pid) and started(pid) == start


def answers(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
