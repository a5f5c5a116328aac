import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def http_server(tmp_path):
    """A loopback HTTP server (tests/loopback_http.py) serving tmp_path/www; stopped by its PID."""
    root = tmp_path / "www"
    root.mkdir()
    proc = subprocess.Popen([sys.executable, str(REPO / "tests" / "loopback_http.py"), str(root), "120"], stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())
        yield root, f"http://127.0.0.1:{port}"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
