"""A team's tracking server: `mlflow server` on a PostgreSQL database, artifacts proxied.

    python -m cnn_denoise.tracking.server start [--dir .team] [--port 5000] [--host 127.0.0.1]
    python -m cnn_denoise.tracking.server stop  [--dir .team]
    python -m cnn_denoise.tracking.server status [--dir .team]

One folder holds everything: PostgreSQL's data, the artifacts the server stores for its
clients, the logs, and server.json with both PIDs (record.py). PostgreSQL is initialised on
first start with two roles, each with a random password in a 0600 file: its superuser (pgadmin),
which only this module uses, to make the other; and `mlflow` (pgpass), which owns the mlflow and
optuna databases and nothing more: no superuser, who could run shell commands as the database's
OS user, is named in the URLs the team is given (a folder made before is split so at its next
start: roles.py). PostgreSQL listens on 127.0.0.1 only (no Unix
socket); the MLflow server listens on --host. The pipeline logs to it once MLFLOW_TRACKING_URI
names it. `stop` stops both by their PIDs. A --dir that exists keeps its mode (refused if others
may write to it); a new one is made 755, for PostgreSQL's user to reach its data through.
Why PostgreSQL: many writers at once (a team, parallel `dvc queue` workers) are what a
database server is for; a SQLite file serialises them and cannot be shared over a network.
"""

import argparse
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from cnn_denoise.common.atomic import write_json
from cnn_denoise.common.errors import PipelineError, run_stage
from cnn_denoise.common.procs import answers, free_port, started
from cnn_denoise.tracking import roles
from cnn_denoise.tracking.record import status, stop, stop_pids

PG_ROOT = Path("/usr/lib/postgresql")  # where Debian installs each version of PostgreSQL
DATABASE = "mlflow"  # the database, and its user, that MLflow keeps its runs in
OPTUNA_DATABASE = "optuna"  # beside it, the team's searches (cnn_denoise.tune), same user
# PostgreSQL's superuser, used only by this module to make the role above and its databases: a
# superuser can run shell commands as the database's OS user (COPY ... PROGRAM), so the role
# whose password goes to every team member's MLflow and Optuna owns its databases and no more
ADMIN = "admin"
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


def _pg_ready(port: int, user: str, password: str) -> bool:
    import psycopg2

    try:
        psycopg2.connect(
            host="127.0.0.1", port=port, user=user, password=password, dbname="postgres", connect_timeout=2
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


def _init_db(folder: Path) -> tuple[str, str, str]:
    """initdb on first start; (the superuser's name, its password, the password of the `mlflow`
    role). A folder made before the superuser was split off has `mlflow` as its superuser."""
    data, pwfile, adminfile = folder / "pgdata", folder / "pgpass", folder / "pgadmin"
    if (data / "PG_VERSION").exists():
        password = pwfile.read_text().strip()
        if not adminfile.exists():  # made before the roles were split: `mlflow` is the superuser (roles.py)
            return DATABASE, password, password
        return ADMIN, adminfile.read_text().strip(), password
    data.mkdir(mode=0o700, parents=True, exist_ok=True)
    user = _user()
    if user:
        shutil.chown(data, "postgres", "postgres")
    password, admin = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    _secret(pwfile, password)
    _secret(adminfile, admin)
    init_pw = folder / ".initdb-pw"
    _secret(init_pw, admin)
    if user:
        shutil.chown(init_pw, "postgres", "postgres")
    try:
        proc = subprocess.run(
            [
                pg_bin("initdb"),
                "-D",
                str(data),
                "-U",
                ADMIN,
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
    return ADMIN, admin, password


def _start_postgres(folder: Path, admin: tuple[str, str], password: str) -> tuple[subprocess.Popen, int]:
    """PostgreSQL on a free loopback port; the `mlflow` role (no superuser, no CREATEDB or
    CREATEROLE) made and given its password, its two databases made and owned by it."""
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
    _wait(lambda: _pg_ready(port, *admin), proc, "PostgreSQL", log)
    try:
        if admin[0] == DATABASE:  # an older folder: its superuser renamed, a new `mlflow` made
            names = (DATABASE, OPTUNA_DATABASE)
            admin = (ADMIN, roles.split(port, password, folder / "pgadmin", _secret, DATABASE, ADMIN, names))
            print(f"moved {folder}'s databases to a `{DATABASE}` role that is no superuser", file=sys.stderr)
        _roles(port, admin, password)
    except BaseException:
        stop_pids({"postgres_pid": proc.pid}, own=True)
        raise
    return proc, port


def _roles(port: int, admin: tuple[str, str], password: str) -> None:
    """The `mlflow` role as it must be, its databases made, everything in them its own."""
    db = roles.connect(port, *admin)
    with db.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (DATABASE,))
        verb = "ALTER" if cur.fetchone() else "CREATE"
        cur.execute(
            f"{verb} ROLE {DATABASE} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD %s",
            (password,),
        )
        for name in (DATABASE, OPTUNA_DATABASE):
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone() is None:
                cur.execute(f"CREATE DATABASE {name} OWNER {DATABASE}")
    db.close()
    roles.own(port, *admin, DATABASE, (DATABASE, OPTUNA_DATABASE))


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
    if _user():
        for parent in (folder, *folder.parents):
            if parent.exists() and not parent.stat().st_mode & 0o001:
                raise PipelineError(
                    f"PostgreSQL runs as the postgres user, who cannot enter {parent} (mode "
                    f"{parent.stat().st_mode & 0o777:o}); "
                    f"chmod o+x {parent} or start with --dir somewhere it can reach"
                )
    if folder.exists():  # its mode is its owner's choice: checked, never changed
        mode = folder.stat().st_mode & 0o777
        if mode & 0o022:
            raise PipelineError(
                f"{folder} is writable by other users (mode {mode:o}), who could replace its server.json or "
                f"password files; chmod go-w {folder} or start with --dir elsewhere"
            )
    else:
        folder.mkdir(parents=True)
        os.chmod(folder, 0o755)  # PostgreSQL (another user when we are root) reaches pgdata through it
    admin, admin_password, password = _init_db(folder)
    pg, pg_port = _start_postgres(folder, (admin, admin_password), password)
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
        stop_pids({"mlflow_pid": mlflow and mlflow.pid, "postgres_pid": pg.pid}, own=True)
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
        print(stop(args.dir) or f"no server recorded in {args.dir}")
        return 0
    state = status(args.dir)
    print(f"running at {state['url']}" if state else "not running")
    return 0 if state else 3


if __name__ == "__main__":
    run_stage(main)
