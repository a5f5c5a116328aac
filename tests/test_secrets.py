"""Secrets stay secret (issue 38, classes 1, 2, 8, 9): no password in a process's arguments or a
printed line, the team's database role is no superuser, `server stop` signals only its own
processes, `server start` leaves a folder's mode alone. Through the real commands; the oracles
are /proc (what `ps` shows every user), PostgreSQL's pg_roles, and the processes themselves."""

import json
import os
import random
import shutil
import signal
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from helpers import REPO, free_port, write_params_copy

from cnn_denoise.common import urls

SERVER = [sys.executable, "-m", "cnn_denoise.tracking.server"]
CLI = [sys.executable, "-c", "from cnn_denoise.cli import main; main()"]


@pytest.fixture
def postgresql():
    """Skips without PostgreSQL's programs, except under CI, which installs them (make system)."""
    from cnn_denoise.tracking import server

    try:
        server.pg_bin("initdb")
    except server.PipelineError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(exc))


# ---- 1. a password on the command line; the role it names ----


def _cmdlines() -> dict[int, bytes]:
    out = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                out[int(proc.name)] = (proc / "cmdline").read_bytes()
            except OSError:
                pass
    return out


def _parent(pid: int) -> int | None:
    try:  # the field after the parenthesised name, which may itself hold spaces
        return int((Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1]).split()[1])
    except (OSError, IndexError, ValueError):
        return None


@pytest.mark.slow
def test_tune_workers_get_the_password_in_their_environment_and_ctrl_c_says_what_next(tmp_path, team_server):
    """`make tune` on the team server's PostgreSQL: no process of the search (workers, exprun,
    dvc, the stages) has the password in its arguments; the workers have it in their environment
    (which only their user reads). Ctrl-C then names the command that goes on with the study."""
    from test_tune import project

    from cnn_denoise.tracking import server

    repo, env = project(tmp_path / "p")
    password = (Path(team_server["folder"]) / "pgpass").read_text().strip()
    env.update(OPTUNA_STORAGE=server.optuna_storage(team_server, password), CNN_DENOISE_TRACKING="off")
    env["MAKELEVEL"] = "1"  # as `make tune` runs it: the way to go on is then named as a make command
    run = subprocess.Popen(
        [sys.executable, "-m", "cnn_denoise.tune", "run", "t", "--workers", "2"],
        cwd=repo,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    workers, leaked, deadline = set(), [], time.monotonic() + 180
    try:
        logs = repo / ".dvc" / "tmp" / "tune"
        while time.monotonic() < deadline and run.poll() is None:
            for pid, cmd in _cmdlines().items():
                if password.encode() in cmd:
                    leaked.append(cmd)
                # The run's own children only: a worker's child between fork and exec shows the
                # worker's command line for a moment (seen on CI as a third "worker").
                if b"cnn_denoise.tune\0worker" in cmd and _parent(pid) == run.pid:
                    workers.add(pid)
            started = [p for p in logs.glob("t-*.log") if "Running stage" in p.read_text()] if logs.exists() else []
            if len(workers) == 2 and started:
                break
            time.sleep(0.2)
        assert len(workers) == 2 and started, "the workers did not start a trial in time"
        for pid in workers:
            assert f"OPTUNA_STORAGE={env['OPTUNA_STORAGE']}".encode() in Path(f"/proc/{pid}/environ").read_bytes()
        run.send_signal(signal.SIGINT)  # what Ctrl-C sends the command `make tune` runs
        _, err = run.communicate(timeout=120)
    finally:
        run.kill()
    assert not leaked, leaked[:1]
    assert run.returncode == 130, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: interrupted; the workers were stopped") and "make tune NAME=t" in last, last
    assert "the workspace is as it was" in last, last
    assert "dvc repro" not in err and password not in err


@pytest.mark.slow
def test_the_team_servers_role_owns_its_databases_and_is_no_superuser(team_server):
    """The roles in the URLs the server hands out (MLflow's backend store, read from the MLflow
    process's environment; OPTUNA_STORAGE as `start` prints it) log in, own their databases, and
    are no superuser and cannot make roles or databases."""
    import psycopg2
    from sqlalchemy.engine import make_url

    from cnn_denoise.tracking import server

    environ = Path(f"/proc/{team_server['mlflow_pid']}/environ").read_bytes().split(b"\0")
    (backend,) = [e.split(b"=", 1)[1].decode() for e in environ if e.startswith(b"MLFLOW_BACKEND_STORE_URI=")]
    password = (Path(team_server["folder"]) / "pgpass").read_text().strip()
    for url in (backend, server.optuna_storage(team_server, password)):
        u = make_url(url)
        conn = psycopg2.connect(host=u.host, port=u.port, user=u.username, password=u.password, dbname=u.database)
        with conn, conn.cursor() as cur:
            cur.execute("SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = current_user")
            assert cur.fetchone() == (False, False, False), url
            cur.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()")
            assert cur.fetchone() == (u.username,)
        conn.close()


def _old_server_folder(folder: Path, password: str) -> None:
    """A folder as `server start` made it before the roles were split: `mlflow` is the bootstrap
    superuser and owns a table (with a serial column's sequence) and an enum type in each database."""
    import psycopg2

    from cnn_denoise.tracking import server

    user = server._user()
    (folder / "pgdata").mkdir(mode=0o700)
    (folder / "pgpass").write_text(password + "\n")
    (folder / "pgpass").chmod(0o600)
    pwfile = folder / ".pw"
    pwfile.write_text(password + "\n")
    if user:
        for path in (folder / "pgdata", pwfile):
            shutil.chown(path, "postgres", "postgres")
    init = [server.pg_bin("initdb"), "-D", str(folder / "pgdata"), "-U", "mlflow", "--auth=scram-sha-256"]
    subprocess.run([*init, f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C"], check=True, capture_output=True, **user)
    pwfile.unlink()
    port = free_port()
    pg = subprocess.Popen(
        [server.pg_bin("postgres"), "-D", str(folder / "pgdata"), "-p", str(port), "-c", "listen_addresses=127.0.0.1",
         "-c", "unix_socket_directories="], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **user,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not server._pg_ready(port, "mlflow", password):
            assert time.monotonic() < deadline, "PostgreSQL did not start"
            time.sleep(0.3)
        for name in ("mlflow", "optuna"):
            conn = psycopg2.connect(host="127.0.0.1", port=port, user="mlflow", password=password, dbname="postgres")
            conn.autocommit = True
            conn.cursor().execute(f"CREATE DATABASE {name}")
            conn.close()
            conn = psycopg2.connect(host="127.0.0.1", port=port, user="mlflow", password=password, dbname=name)
            with conn, conn.cursor() as cur:
                cur.execute("CREATE TYPE state AS ENUM ('on', 'off')")
                cur.execute("CREATE TABLE team_notes (id serial PRIMARY KEY, s state)")
                cur.execute("INSERT INTO team_notes (s) VALUES ('on')")
            conn.close()
    finally:
        pg.send_signal(signal.SIGINT)
        pg.wait(timeout=60)


@pytest.mark.slow
def test_an_older_servers_superuser_is_split_from_the_mlflow_role(postgresql):
    """A folder from before: `server start` renames its superuser, makes `mlflow` a role that
    is no superuser with the same password (the URLs the team has still work), and gives it the
    databases and what is in them; MLflow starts on it."""
    import psycopg2

    folder = Path(tempfile.mkdtemp(prefix="cnn-denoise-old-"))
    folder.chmod(0o755)
    try:
        _old_server_folder(folder, "old-pw-QZ")
        start = subprocess.run(
            [*SERVER, "start", "--dir", str(folder), "--port", str(free_port())], capture_output=True, text=True,
            timeout=300,
        )  # fmt: skip
        assert start.returncode == 0 and "no superuser" in start.stderr, start.stderr
        assert (folder / "pgadmin").stat().st_mode & 0o777 == 0o600
        state = json.loads((folder / "server.json").read_text())
        for name in ("mlflow", "optuna"):
            conn = psycopg2.connect(
                host="127.0.0.1", port=state["postgres_port"], user="mlflow", password="old-pw-QZ", dbname=name
            )
            with conn, conn.cursor() as cur:
                cur.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
                assert cur.fetchone() == (False,)
                cur.execute("INSERT INTO team_notes (s) VALUES ('off')")  # its own table, sequence and type
                cur.execute(
                    "SELECT count(*), pg_get_userbyid(relowner) FROM team_notes, pg_class "
                    "WHERE relname = 'team_notes' GROUP BY relowner"
                )
                assert cur.fetchone() == (2, "mlflow")
            conn.close()
        status = subprocess.run([*SERVER, "status", "--dir", str(folder)], capture_output=True, text=True)
        assert status.returncode == 0, status.stdout
    finally:
        subprocess.run([*SERVER, "stop", "--dir", str(folder)], capture_output=True, timeout=120)
        shutil.rmtree(folder, ignore_errors=True)


# ---- 2. secrets in messages ----

HOSTILE = "/#?@:%&=+;$!~'\" [].,\\"
ALNUM = string.ascii_letters + string.digits


def _hostile_passwords(n=400):
    """Passwords of the characters that fool a URL parser, between two markers nothing else
    in the URL contains: a marker in the output means part of the password was shown."""
    rng = random.Random(38)
    for _ in range(n):
        middle = "".join(rng.choice(HOSTILE + ALNUM) for _ in range(rng.randint(1, 12)))
        yield f"QZ{middle}ZQ"


@pytest.mark.parametrize(
    "template",
    [
        "postgresql+psycopg2://mlflow:{pw}@127.0.0.1:5432/optuna",
        "https://ann:{pw}@example.org/data.zip?dl=1",
        "http://ann:{pw}@[::1]:5000",
        "ann:{pw}@db.example.org/optuna",  # no scheme
        "postgresql://ann:{pw}@[::1/optuna",  # a malformed IPv6 address
    ],
)
def test_a_hostile_password_is_never_shown_and_always_found(template, monkeypatch):
    for pw in _hostile_passwords():
        url = template.format(pw=pw)
        monkeypatch.delenv("OPTUNA_STORAGE", raising=False)
        if " " in pw:  # free text ends a URL at a space: such a password is hidden as the known secret it is
            monkeypatch.setenv("OPTUNA_STORAGE", url)
        shown = urls.redact(url)
        assert "QZ" not in shown and "ZQ" not in shown, (url, shown)
        assert shown.startswith(template.split("{pw}")[0].rsplit(":", 1)[0]), shown
        assert urls.secret_in(url) == "a password", url
        said = urls.scrub(f"(psycopg2.OperationalError) connection to '{url}' failed: {url}")
        assert "QZ" not in said and "ZQ" not in said, said


def test_a_known_password_is_scrubbed_wherever_a_library_quotes_it(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://ann:pa/s s#w?rd@127.0.0.1:5000")
    said = urls.scrub("connect failed: password 'pa/s s#w?rd' refused, pa%2Fs%20s%23w%3Frd")
    assert "pa/s" not in said and "pa%2F" not in said, said


@pytest.mark.parametrize("key", ["data.url", "speech.source"])
def test_a_password_with_a_slash_in_params_is_refused_by_the_stage(tmp_path, key):
    value = "ann:pa/QZss@files.example.org/d.zip" if key == "data.url" else "https://ann:pa/QZss@example.org/s.deb"
    write_params_copy(tmp_path, **{key: value})
    env = dict(os.environ, CNN_DENOISE_TRACKING="off")
    proc = subprocess.run(
        [sys.executable, str(REPO / "stages" / "fetch.py"), "data/raw/d.zip"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "holds a password" in proc.stderr, proc.stderr
    assert "QZ" not in proc.stderr and not (tmp_path / "data").exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    "argv",
    [["info"], ["enhance", "{wav}", "-o", "{out}", "-m", "models:/x@y"]],
)
def test_info_and_enhance_with_the_tracking_server_down_say_so_without_its_password(tmp_path, argv):
    import numpy as np
    import soundfile as sf

    sf.write(tmp_path / "a.wav", np.zeros(1600), 16000)
    argv = [a.format(wav=tmp_path / "a.wav", out=tmp_path / "out") for a in argv]
    uri = f"http://ann:pa/QZ#s?s@127.0.0.1:{free_port()}"  # nothing listens there
    env = dict(os.environ, MLFLOW_TRACKING_URI=uri, MLFLOW_HTTP_REQUEST_MAX_RETRIES="0")
    proc = subprocess.run([*CLI, *argv], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("error: ") and "unexpected" not in proc.stderr, proc.stderr
    assert "QZ" not in proc.stderr and "http://ann:***@127.0.0.1:" in proc.stderr, proc.stderr
    assert not (tmp_path / "out").exists()


# ---- 8, 9. the team server's records and folder ----


@pytest.mark.slow
def test_stop_never_signals_a_process_the_record_only_claims(tmp_path):
    """A server.json that says "own": true (which once skipped the start-time check) is a stale
    record: removed, nothing signalled. One that carries the very start time of a live process
    that is not this folder's server (its command line names no file of the folder) is refused
    in one line, exit 1, the record kept, nothing signalled."""
    from cnn_denoise.common.procs import started

    sleeper = subprocess.Popen(["sleep", "120"], start_new_session=True)  # a group leader: killpg would reach it
    try:
        record = {"url": "http://127.0.0.1:1", "mlflow_pid": sleeper.pid, "postgres_pid": sleeper.pid}
        (tmp_path / "server.json").write_text(json.dumps({**record, "own": True}))
        stop = subprocess.run([*SERVER, "stop", "--dir", str(tmp_path)], capture_output=True, text=True)
        assert stop.returncode == 0 and "stale" in stop.stdout and stop.stderr == "", stop.stdout + stop.stderr
        time.sleep(0.5)
        assert sleeper.poll() is None and not (tmp_path / "server.json").exists()
        forged = {"mlflow_started": started(sleeper.pid), "postgres_started": started(sleeper.pid)}
        (tmp_path / "server.json").write_text(json.dumps({**record, **forged}))
        stop = subprocess.run([*SERVER, "stop", "--dir", str(tmp_path)], capture_output=True, text=True)
        assert stop.returncode == 1 and stop.stderr.count("\n") == 1, stop.stderr
        assert f"names pid {sleeper.pid}" in stop.stderr and "nothing was signalled" in stop.stderr
        time.sleep(0.5)
        assert sleeper.poll() is None and (tmp_path / "server.json").exists()
        status = subprocess.run([*SERVER, "status", "--dir", str(tmp_path)], capture_output=True, text=True)
        assert (status.returncode, status.stdout) == (3, "not running\n")
    finally:
        sleeper.kill()
        sleeper.wait()


@pytest.mark.slow
@pytest.mark.parametrize("pid", ["123", 1.5, True, -4, None, [1]])
def test_status_and_stop_of_a_record_with_a_pid_that_is_no_number(tmp_path, pid):
    record = {"mlflow_pid": pid, "postgres_pid": pid, "mlflow_started": "1", "postgres_started": "1", "url": "x"}
    (tmp_path / "server.json").write_text(json.dumps(record))
    status = subprocess.run([*SERVER, "status", "--dir", str(tmp_path)], capture_output=True, text=True)
    assert (status.returncode, status.stdout, status.stderr) == (3, "not running\n", "")
    stop = subprocess.run([*SERVER, "stop", "--dir", str(tmp_path)], capture_output=True, text=True)
    assert stop.returncode == 0 and stop.stderr == "" and not (tmp_path / "server.json").exists()


@pytest.mark.slow
@pytest.mark.parametrize("mode", [0o700, 0o750, 0o777, 0o775])
def test_start_leaves_an_existing_folders_mode_alone(mode, postgresql):
    """Never chmod'ed: a closed folder (700) is refused when PostgreSQL runs as another user
    (root), kept and used otherwise; one others may write to is refused (they could replace
    server.json or the password files). A refusal writes nothing."""
    home = Path(tempfile.mkdtemp(prefix="cnn-denoise-mode-"))  # in /tmp: pytest's folders are 0700
    home.chmod(0o755)
    folder = home / "team"
    folder.mkdir()
    folder.chmod(mode)
    proc = subprocess.run(
        [*SERVER, "start", "--dir", str(folder), "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=200,
    )
    try:
        assert folder.stat().st_mode & 0o777 == mode
        if mode & 0o022:
            assert (
                proc.returncode == 1
                and "writable by other users" in proc.stderr
                and f"chmod go-w {folder}" in proc.stderr
            )
        elif os.geteuid() == 0:
            assert proc.returncode == 1 and f"who cannot enter {folder} (mode {mode:o})" in proc.stderr
        if proc.returncode:
            assert proc.stderr.count("\n") == 1 and list(folder.iterdir()) == [], proc.stderr
    finally:
        subprocess.run([*SERVER, "stop", "--dir", str(folder)], capture_output=True, timeout=120)
        shutil.rmtree(home, ignore_errors=True)
