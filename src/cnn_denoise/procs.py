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
