"""A team's tracking server: `mlflow server` on a PostgreSQL database, artifacts proxied.

    python -m cnn_denoise.tracking.server start [--dir .team] [--port 5000] [--host 127.0.0.1]
    python -m cnn_denoise.tracking.server stop  [--dir .team]
    python -m cnn_denoise.tracking.server status [--dir .team]

One folder holds everything: PostgreSQL's data (initialised on first start with a random
password kept in a 0600 file), the artifacts the server stores for its clients, the logs,
and server.json with both PIDs. PostgreSQL listens on 127.0.0.1 only (no Unix socket), so
only the MLflow server reaches it; the MLflow server listens on --host. The pipeline logs
to it once MLFLOW_TRACKING_URI names it. `stop` stops both by their PIDs.
Why PostgreSQL: many writers at once (a team, parallel `dvc queue` workers) are what a
database server is for; a SQLite file serialises them and cannot be shared over a network.
"""

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from cnn_denoise.common.atomic import write_json
from cnn_denoise.common.errors import PipelineError, run_stage
from cnn_denoise.common.procs import answers, free_port, pid_alive, same_process, started

PG_ROOT = Path("/usr/lib/postgresql")  # where Debian installs each version of PostgreSQL
DATABASE = "mlflow"  # the database, and its user, that MLflow keeps its runs in
OPTUNA_DATABASE = "optuna"  # beside it, the team's searches (cnn_denoise.tune), same user
START_TIMEOUT = 90  # seconds for each server to answer


def pg_bin(name: str) -> str:
    """A PostgreSQL server program: Debian keeps them in /usr/lib/postgresql/<version>/bin."""
    folders = sorted(PG_ROOT.glob("*/bin"), key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    for folder in reversed(folders):
        if (folder / name).exists():
            return str(folder / name)
    found = shutil.which(name)
    if not found:
        raise PipelineError(
            f"PostgreSQL's {name} is not installed; install it (Debian: apt-get install postgresql) and start again"
        )
    return found


def _user() -> dict:
    """PostgreSQL refuses to run as root: as root, run it as the `postgres` user."""
    if os.geteuid() != 0:
        return {}
    try:
        import pwd

        pwd.getpwnam("postgres")
    except KeyError:
        raise PipelineError(
            "running as root and there is no `postgres` user to run PostgreSQL as; "
            "install Debian's postgresql package or start as an ordinary user"
        ) from None
    return {"user": "postgres", "group": "postgres"}


def _wait(ready, proc, what: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text(errors="replace").strip().splitlines()[-1:] if log.exists() else []
            raise PipelineError(f"{what} did not start ({tail[0] if tail else 'no log'}); see {log}")
        time.sleep(0.3)


def _pg_ready(port: int, password: str) -> bool:
    import psycopg2

    try:
        psycopg2.connect(
            host="127.0.0.1", port=port, user=DATABASE, password=password, dbname="postgres", connect_timeout=2
        ).close()
        return True
    except psycopg2.OperationalError:
        return False


def _http_ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def _secret(path: Path, text: str) -> None:
    """A file only its owner reads, from its first byte."""
    path.unlink(missing_ok=True)
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
        f.write(text + "\n")


def _init_db(folder: Path) -> str:
    """initdb on first start; the password of the `mlflow` database user."""
    data, pwfile = folder / "pgdata", folder / "pgpass"
    if (data / "PG_VERSION").exists():
        return pwfile.read_text().strip()
    data.mkdir(mode=0o700, parents=True, exist_ok=True)
    user = _user()
    if user:
        shutil.chown(data, "postgres", "postgres")
    password = secrets.token_urlsafe(24)
    _secret(pwfile, password)
    init_pw = folder / ".initdb-pw"
    _secret(init_pw, password)
    if user:
        shutil.chown(init_pw, "postgres", "postgres")
    try:
        proc = subprocess.run(
            [
                pg_bin("initdb"),
                "-D",
                str(data),
                "-U",
                DATABASE,
                "--auth=scram-sha-256",
                f"--pwfile={init_pw}",
                "-E",
                "UTF8",
                "--locale=C",
            ],
            capture_output=True,
            text=True,
            **user,
        )
    finally:
        init_pw.unlink()
    if proc.returncode != 0:
        shutil.rmtree(data, ignore_errors=True)
        reason = (proc.stderr.strip().splitlines() or ["?"])[-1]
        raise PipelineError(
            f"initdb failed in {data}: {reason}; the postgres user must be able to reach that folder: use --dir "
            "elsewhere"
        )
    return password


def _start_postgres(folder: Path, password: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    log = folder / "postgres.log"
    with open(log, "a") as out:
        proc = subprocess.Popen(
            [
                pg_bin("postgres"),
                "-D",
                str(folder / "pgdata"),
                "-p",
                str(port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "unix_socket_directories=",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **_user(),
        )
    _wait(lambda: _pg_ready(port, password), proc, "PostgreSQL", log)
    import psycopg2

    db = psycopg2.connect(host="127.0.0.1", port=port, user=DATABASE, password=password, dbname="postgres")
    db.autocommit = True
    with db.cursor() as cur:
        for name in (DATABASE, OPTUNA_DATABASE):
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone() is None:
                cur.execute(f"CREATE DATABASE {name}")
    db.close()
    return proc, port


def allowed_hosts(host: str, port: int, extra: str = "") -> str:
    """The Host headers MLflow accepts (it refuses others with HTTP 403, against DNS rebinding):
    loopback, and when serving the network this machine's names and addresses, each with and
    without the port, plus `extra` (comma-separated names the team uses for it)."""
    names = {"localhost", "127.0.0.1"}
    if host not in ("127.0.0.1", "localhost"):
        names |= {host, socket.gethostname(), socket.getfqdn()} - {"0.0.0.0", "::"}
        try:
            names |= set(socket.gethostbyname_ex(socket.gethostname())[2])
        except OSError:
            pass
    names |= {n.strip() for n in extra.split(",") if n.strip()}
    return ",".join(sorted({*names, *(f"{n}:{port}" for n in names if ":" not in n)}))


def start(folder: Path, host: str, port: int, workers: int, hosts: str = "") -> dict:
    folder = folder.resolve()
    probe = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    if answers(probe, port):  # another server's URL printed as ours would send the team's runs there
        raise PipelineError(
            f"port {port} on {probe} already answers (another MLflow or service); stop it or start with "
            "another --port (make tracking-server PORT=...)"
        )
    pg_bin("initdb"), pg_bin("postgres"), _user()  # missing programs are said before anything is written
    if (state := status(folder)) is not None:
        raise PipelineError(
            f"a server from {folder} is running at {state['url']} (pids {state['mlflow_pid']}, "
            f"{state['postgres_pid']}); "
            "stop it first: python -m cnn_denoise.tracking.server stop"
        )
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o755)  # PostgreSQL (another user when we are root) reaches pgdata through it
    if _user():
        for parent in folder.parents:
            if not parent.stat().st_mode & 0o001:
                raise PipelineError(
                    f"PostgreSQL runs as the postgres user, who cannot enter {parent} (mode "
                    f"{parent.stat().st_mode & 0o777:o}); "
                    f"chmod o+x {parent} or start with --dir somewhere it can reach"
                )
    password = _init_db(folder)
    pg, pg_port = _start_postgres(folder, password)
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    env = dict(
        os.environ,
        MLFLOW_BACKEND_STORE_URI=f"postgresql+psycopg2://{DATABASE}:{password}@127.0.0.1:{pg_port}/{DATABASE}",
        MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
        MLFLOW_DISABLE_TELEMETRY="true",
    )
    log, mlflow = folder / "mlflow.log", None
    try:
        with open(log, "a") as out:
            mlflow = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "mlflow"),
                    "server",
                    "--host",
                    host,
                    "--port",
                    str(port),
                    "--workers",
                    str(workers),
                    "--artifacts-destination",
                    str(folder / "artifacts"),
                    "--allowed-hosts",
                    allowed_hosts(host, port, hosts),
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _wait(lambda: _http_ready(url), mlflow, "mlflow server", log)
    except BaseException:
        _stop_pids({"mlflow_pid": mlflow and mlflow.pid, "postgres_pid": pg.pid, "own": True})
        raise
    state = {
        "url": url,
        "mlflow_pid": mlflow.pid,
        "mlflow_started": started(mlflow.pid),
        "postgres_pid": pg.pid,
        "postgres_started": started(pg.pid),
        "postgres_port": pg_port,
        "folder": str(folder),
    }
    write_json(folder / "server.json", state)
    return state


def optuna_storage(state: dict, password: str) -> str:
    """The URL of the server's Optuna database (make tune's OPTUNA_STORAGE), from its record."""
    return f"postgresql+psycopg2://{DATABASE}:{password}@127.0.0.1:{state['postgres_port']}/{OPTUNA_DATABASE}"


def status(folder: Path) -> dict | None:
    """server.json when both of the processes it records still run (the same processes: PID
    and start time), else None."""
    state = _record(folder)
    alive = [same_process(state.get(f"{key}_pid"), state.get(f"{key}_started")) for key in ("mlflow", "postgres")]
    return state if state and all(alive) else None


def _record(folder: Path) -> dict:
    try:
        state = json.loads((folder / "server.json").read_text())
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def _stop_pids(state: dict) -> None:
    """MLflow's process group gets SIGTERM, PostgreSQL SIGINT (its fast shutdown); SIGKILL after
    30 s. Only the processes the record names (PID and start time): a PID the system has given
    to another process since is left alone. A record without start times (a server started
    just now, before it was written) names its own children."""
    for key, sig in (("mlflow_pid", signal.SIGTERM), ("postgres_pid", signal.SIGINT)):
        pid = state.get(key)
        start = state.get(key.replace("_pid", "_started"), started(pid) if state.get("own") else None)
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


def stop(folder: Path) -> bool:
    state = _record(folder)
    if not state:
        return False
    _stop_pids(state)
    (folder / "server.json").unlink(missing_ok=True)
    return True


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cnn_denoise.tracking.server", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("start", "stop", "status"))
    parser.add_argument("--dir", type=Path, default=Path(".team"), help="the server's folder (default .team)")
    parser.add_argument(
        "--host", default="127.0.0.1", help="where MLflow listens (0.0.0.0 for the team's network; default 127.0.0.1)"
    )
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=2, help="MLflow server worker processes")
    parser.add_argument(
        "--allowed-hosts",
        default="",
        help="more names clients use for this machine (comma-separated); its own names are allowed already",
    )
    args = parser.parse_args(argv)
    if args.action == "start":
        state = start(args.dir, args.host, args.port, args.workers, args.allowed_hosts)
        print(
            f"MLflow server at {state['url']} (PostgreSQL on 127.0.0.1:{state['postgres_port']}, everything in "
            f"{state['folder']})"
        )
        print(f"export MLFLOW_TRACKING_URI={state['url']}")
        print(f"export OPTUNA_STORAGE={optuna_storage(state, '$(cat ' + str(Path(state['folder']) / 'pgpass') + ')')}")
        return 0
    if args.action == "stop":
        print("stopped" if stop(args.dir) else f"no server recorded in {args.dir}")
        return 0
    state = status(args.dir)
    print(f"running at {state['url']}" if state else "not running")
    return 0 if state else 3


if __name__ == "__main__":
    run_stage(main)
