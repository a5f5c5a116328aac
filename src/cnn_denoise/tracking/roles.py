"""An older team server's database moved to the split roles (issue 38): its `mlflow` role was
PostgreSQL's bootstrap superuser, whose password every team member's OPTUNA_STORAGE carries,
and a superuser can run shell commands as the database's OS user.

PostgreSQL keeps the bootstrap role a superuser for good, so it is renamed to the admin role
(its password new, in pgadmin, which never leaves the server's folder), and a new `mlflow` role
with the old password, no superuser, takes over the databases and every object in them. Done
once, at the first start of such a folder, through a temporary superuser (a role cannot rename
itself). The roles change in one transaction, and pgadmin is put in place once it commits;
every start then gives the databases' objects to `mlflow` again (own()) and drops the
temporary role, so a start cut short after the roles changed is finished by the next.
"""

import secrets

MIGRATING = "cnn_denoise_migrating"  # the temporary superuser, dropped at the end
# what pg_class kinds are altered with, tables first: a sequence a table's column owns follows it
KINDS = (("r", "TABLE"), ("p", "TABLE"), ("f", "FOREIGN TABLE"), ("v", "VIEW"), ("m", "MATERIALIZED VIEW"))
# the schemas that are not the system's (%% is psycopg2's %: each query below takes parameters)
OURS = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%%'"


def connect(port: int, user: str, password: str, dbname: str = "postgres"):
    import psycopg2

    conn = psycopg2.connect(host="127.0.0.1", port=port, user=user, password=password, dbname=dbname)
    conn.autocommit = True
    return conn


def _give(cur, old: str, new: str) -> None:
    """Every object of this database that `old` owns, outside the system's schemas, to `new`."""
    owned = "(SELECT oid FROM pg_roles WHERE rolname = %s)"
    for kind, word in (*KINDS, ("S", "SEQUENCE")):
        cur.execute(
            f"SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            f"WHERE c.relkind = %s AND c.relowner = {owned} AND {OURS}",
            (kind, old),
        )
        for (name,) in cur.fetchall():
            cur.execute(f"ALTER {word} {name} OWNER TO {new}")
    cur.execute(
        f"SELECT t.oid::regtype::text FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
        f"WHERE t.typtype IN ('e', 'd', 'r', 'm') AND t.typowner = {owned} AND {OURS}",
        (old,),
    )
    for (name,) in cur.fetchall():
        cur.execute(f"ALTER TYPE {name} OWNER TO {new}")
    cur.execute(
        f"SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
        f"WHERE p.proowner = {owned} AND {OURS}",
        (old,),
    )
    for (name,) in cur.fetchall():
        cur.execute(f"ALTER ROUTINE {name} OWNER TO {new}")
    cur.execute(
        f"SELECT n.nspname FROM pg_namespace n WHERE n.nspowner = {owned} AND {OURS} AND n.nspname <> 'public'",
        (old,),
    )
    for (name,) in cur.fetchall():
        cur.execute(f'ALTER SCHEMA "{name}" OWNER TO {new}')


def own(port: int, admin: str, admin_password: str, user: str, databases) -> None:
    """Every object in `databases` that `admin` owns given to `user`; the temporary role gone."""
    for name in databases:
        with connect(port, admin, admin_password, name) as conn, conn.cursor() as cur:
            _give(cur, admin, user)
        conn.close()
    with connect(port, admin, admin_password) as conn, conn.cursor() as cur:
        cur.execute(f"DROP ROLE IF EXISTS {MIGRATING}")
    conn.close()


def split(port: int, password: str, admin_file, write_secret, user: str, admin: str, databases) -> str:
    """Move a database whose `user` is the bootstrap superuser (password `password`) to `admin`
    (that same bootstrap role, renamed, with a new password, put in admin_file) and a new `user`
    that owns `databases` and what is in them; return admin's password."""
    import os

    admin_password = secrets.token_urlsafe(24)
    pending = admin_file.with_name(admin_file.name + ".new")
    write_secret(pending, admin_password)  # kept before it is set: a crash never loses it
    conn = connect(port, user, password)
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (MIGRATING,))
        verb = "ALTER" if cur.fetchone() else "CREATE"
        cur.execute(f"{verb} ROLE {MIGRATING} SUPERUSER LOGIN PASSWORD %s", (admin_password,))
    conn.close()
    conn = connect(port, MIGRATING, admin_password)
    conn.autocommit = False  # the roles change together or not at all
    with conn, conn.cursor() as cur:
        cur.execute(f"ALTER ROLE {user} RENAME TO {admin}")
        cur.execute(f"ALTER ROLE {admin} PASSWORD %s", (admin_password,))
        cur.execute(
            f"CREATE ROLE {user} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD %s",
            (password,),
        )
        cur.execute("SELECT datname FROM pg_database WHERE datname = ANY(%s)", (list(databases),))
        for (name,) in cur.fetchall():
            cur.execute(f"ALTER DATABASE {name} OWNER TO {user}")
    conn.close()
    os.replace(pending, admin_file)
    return admin_password
