"""`make mlflow-ui`: one worker, no job runner, HOST/PORT honoured, gone within seconds of Ctrl-C."""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from helpers import REPO, free_port, wait_healthy

pytestmark = pytest.mark.slow


def group(pgid: int) -> list[int]:
    """The PIDs whose process group is `pgid` (make, its shell and what they started)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":  # a zombie has exited (make, not yet waited for)
            pids.append(int(stat.parent.name))
    return pids


def rss_mib(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        total += int(status.split("VmRSS:")[1].split()[0]) if "VmRSS:" in status else 0
    return total / 1024


def test_one_worker_on_the_port_asked_and_gone_after_ctrl_c(tmp_path):
    port = free_port()
    env = dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true")
    proc = subprocess.Popen(
        ["make", "-s", "-C", str(REPO), "mlflow-ui", f"PORT={port}", "HOST=127.0.0.1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own group, as a terminal's Ctrl-C reaches it
    )
    try:
        assert wait_healthy(f"http://127.0.0.1:{port}", proc, 120), "the UI did not start"
        time.sleep(3)  # anything it starts late (a job runner) has started by now
        pids = group(proc.pid)
        print(f"make mlflow-ui: {len(pids)} processes, {rss_mib(pids):.0f} MiB RSS")
        assert len(pids) <= 4, pids  # make, the server and one worker (MLflow's default: 16 processes)
        assert rss_mib(pids) < 1200
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C
        start = time.monotonic()
        while group(proc.pid) and time.monotonic() < start + 15:  # a shared 2-core machine: seconds, not 30
            time.sleep(0.2)
        print(f"gone {time.monotonic() - start:.1f} s after Ctrl-C")
        left = [Path(f"/proc/{p}/cmdline").read_text().replace("\0", " ")[:120] for p in group(proc.pid)]
        assert not left, f"processes outlived Ctrl-C by 15 s: {left}"
    finally:
        if group(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
