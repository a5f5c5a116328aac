"""Retake the README's MLflow UI screenshots (docs/img/) from the project's own store.

Starts `mlflow ui` over ./mlflow.db on a free 127.0.0.1 port, opens the experiment's runs
table and the chart view (the headline view `make mlflow-ui` prints), the registry and the
version `enhance` takes in headless Chromium, writes PNGs, and stops the server by its PID.
The shipped speech model is registered first (@shipped, `python -m cnn_denoise.models.shipped
--register`), so the registry shows it beside the lab's.
Run it after `make repro` and a few experiments (`make recipe`, `make sweep`):

    python docs/screenshots.py
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "img"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--hide-scrollbars",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1600,1000",
]


# Wall time one page may take: virtual time stands still while the UI's requests are pending,
# and a busy machine's single MLflow worker serves its JavaScript slowly.
SHOT_SECONDS = 600


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def shoot(url: str, path: Path, wait_ms: int = 15000) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        sys.exit("error: chromium is not installed; apt-get install chromium (make test does it as root)")
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [
                chromium,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                f"--virtual-time-budget={wait_ms}",
                f"--screenshot={path}",
                url,
            ],
            check=True,
            capture_output=True,
            timeout=SHOT_SECONDS,
        )
    print(f"wrote {path.relative_to(ROOT)}", file=sys.stderr)


def main() -> int:
    import mlflow

    from cnn_denoise import tracking
    from cnn_denoise.models import shipped
    from cnn_denoise.tracking.registry import ENHANCE_ALIASES
    from cnn_denoise.tracking.store import open_store, registry_url, view_url

    store = f"sqlite:///{ROOT / 'mlflow.db'}"
    os.environ["MLFLOW_TRACKING_URI"] = store
    open_store()  # an older store gets the experiment's kind and the headline view
    if shipped.available():  # the registry shows the model enhance takes on a fresh clone
        tracking.log_shipped(shipped.WEIGHTS, shipped.card())
    exp = mlflow.MlflowClient(tracking_uri=store).get_experiment_by_name(tracking.EXPERIMENT)
    if exp is None:
        sys.exit("error: no runs yet: run make repro and an experiment or two first")
    port = free_port()
    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    server = subprocess.Popen(
        [
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            store,
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{base}/health", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    sys.exit("error: mlflow ui did not start")
                time.sleep(0.5)
        OUT.mkdir(parents=True, exist_ok=True)
        runs = view_url(base, exp.experiment_id)  # the headline columns, best SI-SDR first
        shoot(f"{runs}&compareRunsMode=TABLE", OUT / "mlflow-runs.png")
        shoot(f"{runs}&compareRunsMode=CHART", OUT / "mlflow-chart.png", 40000)  # the charts' library loads last
        client = mlflow.MlflowClient(tracking_uri=store)
        versions = client.search_model_versions(f"name = '{tracking.REGISTERED_MODEL}'")
        if versions:
            shoot(registry_url(base, tracking.REGISTERED_MODEL), OUT / "mlflow-registry.png")
            # the version enhance takes: aliased for it, else the shipped one, else the newest
            taken = [v for v in versions if set(v.aliases) & set(ENHANCE_ALIASES)]
            taken = taken or [v for v in versions if "shipped" in v.aliases]
            version = max(taken or versions, key=lambda v: int(v.version)).version
            shoot(f"{base}/#/models/{tracking.REGISTERED_MODEL}/versions/{version}", OUT / "mlflow-model.png")
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
