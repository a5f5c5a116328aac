"""`make mlflow-ui`: one worker, no job runner, HOST/PORT honoured, gone within seconds of Ctrl-C."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from helpers import REPO, free_port, rest, wait_healthy

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
    printed = tmp_path / "stdout"
    proc = subprocess.Popen(
        ["make", "-s", "-C", str(REPO), "mlflow-ui", f"PORT={port}", "HOST=127.0.0.1"],
        env=env,
        stdout=printed.open("w"),
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own group, as a terminal's Ctrl-C reaches it
    )
    try:
        assert wait_healthy(f"http://127.0.0.1:{port}", proc, 120), "the UI did not start"
        # the full addresses of the headline view (the experiment's id, from the store) and the registry
        experiment = rest(f"http://127.0.0.1:{port}", "experiments/get-by-name", experiment_name="lab2b-cnn-denoise")
        exp_id = experiment["experiment"]["experiment_id"]
        out = printed.read_text()
        base = f"http://127.0.0.1:{port}/#/"
        assert f"{base}experiments/{exp_id}/runs?viewStateShareKey=headline" in out, out
        assert f"{base}models/cnn-denoise" in out, out
        tags = {t["key"]: t["value"] for t in experiment["experiment"]["tags"]}
        view = json.loads(tags["mlflow.sharedViewState.headline"])
        charted = {c["metricKey"]: c["deleted"] for c in view["compareRunCharts"]}
        assert charted["test.l1_vs_zeros_db"] is False and charted["test.l1"] is True  # dB bars, not 0.00 ones
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
