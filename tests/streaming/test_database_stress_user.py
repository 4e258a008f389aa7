"""DatabaseStressUser runs every query against the backend's real database (SQLite and PostgreSQL),
turns locks and bad input into failures or exit code 2 rather than crashes, and its PostgreSQL queries
yield to the other simulated users while they wait on the server (psycopg under gevent)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.backend_process import POSTGRES_URL, Backend, run_backend
from tests.streaming.headless import (
    SCENARIOS,
    assert_clean_exit,
    assert_survived,
    run_locust,
    write_locustfile,
)

SHARED_QUERIES = {
    "connect",
    "hot rows (pick)",
    "evidence by framework (join)",
    "evidence stats by status and type (aggregate)",
    "framework coverage, all tenants (join + aggregate)",
    "hot evidence update (row lock)",
    "evidence scan in chunks of 100 (fetchmany)",
}

# Quick think time and even weights so a few seconds run every task; everything else is the class's
# own code. (Locust lists a task once per unit of weight; one entry per name makes the weights even.)
FAST_DB_USER = """
from locust import constant
from locust_scenarios import database_stress


class FastDatabaseStressUser(database_stress.DatabaseStressUser):
    wait_time = constant(0.05)
    EXTRA


FastDatabaseStressUser.tasks = list({t.__name__: t for t in FastDatabaseStressUser.tasks}.values())
"""

# Counts, inside PostgreSQL, the queries of this run's connections that are active at the same time
# as its own. If psycopg's waits blocked the process, no other user could have a query in flight
# while this one runs, and the count would always be 1.
PROBE_USER = """
from locust import constant
from locust_scenarios import database_stress, sql


class FastDatabaseStressUser(database_stress.DatabaseStressUser):
    wait_time = constant(0.05)


FastDatabaseStressUser.tasks = list({t.__name__: t for t in FastDatabaseStressUser.tasks}.values())


class OverlapProbeUser(database_stress.DatabaseStressUser):
    wait_time = constant(0)
    seed_evidence = 0

    def probe(self):
        def go(db):
            seen = db.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND state = 'active'",
                (APP,),
            ).fetchone()[0]
            db.execute("SELECT pg_sleep(0.2)")
            return seen

        seen = sql.session(self).run("overlap probe", go)
        if seen:
            self.environment.events.request.fire(
                request_type="SQL", name=f"queries in flight seen: {min(seen, 3)}", response_time=0.0,
                response_length=0, context=self.context(), exception=None,
            )



# Locust adds a base class's tasks to a subclass's own; the probe runs nothing else.
OverlapProbeUser.tasks = [OverlapProbeUser.probe]
"""


@pytest.fixture(scope="module")
def sqlite_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Backend, Path]]:
    """A backend of its own on a SQLite file the tests can open (and lock)."""
    tmp = tmp_path_factory.mktemp("db-stress")
    path = tmp / "backend.sqlite3"
    with run_backend(tmp, database_url=str(path)) as b:
        yield b, path


def test_every_query_runs_on_the_backends_sqlite_file_with_fts5(
    sqlite_backend: tuple[Backend, Path], tmp_path: Path
) -> None:
    backend, path = sqlite_backend
    locustfile = write_locustfile(tmp_path, "fast_db", FAST_DB_USER.replace("EXTRA", ""))
    run = run_locust(
        locustfile, tmp_path, host=backend.url, users=3, seconds=4, extra=["--db-url", str(path)]
    )
    assert_clean_exit(run)
    assert run.names("SQL") == SHARED_QUERIES | {"evidence full-text search (fts5)"}
    for name in run.names("SQL"):
        assert run.requests("SQL", name) > 0
    # Each user created its own evidence through the API before querying it.
    assert run.requests("POST", "/api/evidence/bulk") == 3


def test_embedded_backends_database_is_used_when_no_db_url_is_given(tmp_path: Path) -> None:
    locustfile = write_locustfile(tmp_path, "fast_db", FAST_DB_USER.replace("EXTRA", ""))
    run = run_locust(
        locustfile, tmp_path, host=None, users=2, seconds=3, extra=["--backend-demo-evidence", "50"]
    )
    assert_clean_exit(run)
    assert run.requests("SQL", "evidence stats by status and type (aggregate)") > 0
    assert run.requests("SQL", "evidence full-text search (fts5)") > 0


@pytest.mark.postgres
def test_every_query_runs_on_postgresql_and_users_queries_overlap(
    pg_backend: Backend, tmp_path: Path
) -> None:
    assert pg_backend.database_url
    app = "cgpt_dbstress_" + uuid.uuid4().hex[:8]
    url = f"{pg_backend.database_url}&application_name={app}"
    locustfile = write_locustfile(tmp_path, "probe_db", PROBE_USER.replace("APP", repr(app)))
    run = run_locust(locustfile, tmp_path, host=pg_backend.url, users=4, seconds=4, extra=["--db-url", url])
    assert_clean_exit(run)
    stress = (
        run.names("SQL") - {"overlap probe"} - {n for n in run.names("SQL") if n.startswith("queries in")}
    )
    assert stress == SHARED_QUERIES | {"evidence full-text search (tsvector)"}
    for name in stress:
        assert run.requests("SQL", name) > 0
    assert run.requests("SQL", "overlap probe") > 0
    overlapping = [
        n for n in run.names("SQL") if n.startswith("queries in flight seen: ") and int(n[-1]) >= 2
    ]
    assert overlapping, f"no probe ever saw another user's query in flight: {sorted(run.names('SQL'))}"


def test_a_locked_sqlite_database_is_a_failure_and_the_users_keep_running(
    sqlite_backend: tuple[Backend, Path], tmp_path: Path
) -> None:
    backend, path = sqlite_backend
    email, password = f"locked-{uuid.uuid4().hex[:8]}@example.com", "locked-db-password-1"
    status, _ = backend.request(
        "POST", "/api/auth/register", {"email": email, "password": password, "full_name": "Lock Holder"}
    )
    assert status == 201
    status, tokens = backend.request("POST", "/api/auth/login", {"email": email, "password": password})
    assert status == 200 and isinstance(tokens, dict)
    items = [
        {"title": f"Access review {i}", "description": "security evidence", "evidence_type": "document"}
        for i in range(5)
    ]
    status, _ = backend.request("POST", "/api/evidence/bulk", {"items": items}, token=tokens["access_token"])
    assert status == 201
    locustfile = write_locustfile(
        tmp_path,
        "locked_db",
        FAST_DB_USER.replace("EXTRA", "seed_evidence = 0\n    sqlite_busy_timeout = 0.05"),
    )
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # every writer now gets "database is locked"
    try:
        run = run_locust(
            locustfile,
            tmp_path,
            host=backend.url,
            users=2,
            seconds=3,
            extra=["--db-url", str(path), "--login-email", email],
            env={"CGPT_LOGIN_PASSWORD": password},
        )
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert_survived(run)
    assert run.returncode == 1  # failures make Locust exit 1
    updates = run.requests("SQL", "hot evidence update (row lock)")
    assert updates >= 2 and run.failures_of("SQL", "hot evidence update (row lock)") == updates
    locked = [f for f in run.failures if f["Name"] == "hot evidence update (row lock)"]
    assert locked and all("database is locked" in f["Error"] for f in locked), run.errors()
    # Reads are not blocked by a writer in WAL mode, and went on succeeding.
    assert run.requests("SQL", "evidence by framework (join)") > 0
    assert run.failures_of("SQL", "evidence by framework (join)") == 0


@pytest.mark.parametrize(
    ("db_url", "message"),
    [
        ("mysql://root@127.0.0.1/db", "--db-url: unsupported database URL scheme 'mysql'"),
        (
            "/nonexistent/backend.sqlite3",
            "--db-url: SQLite database '/nonexistent/backend.sqlite3' does not exist",
        ),
    ],
)
def test_an_unusable_db_url_stops_the_run_before_any_load_with_exit_code_2(
    backend: Backend, tmp_path: Path, db_url: str, message: str
) -> None:
    run = run_locust(
        SCENARIOS / "database_stress.py", tmp_path, host=backend.url, users=1, seconds=2,
        extra=["--db-url", db_url],
    )  # fmt: skip
    assert run.returncode == 2, run.output[-3000:]
    assert message in run.output
    assert "Traceback" not in run.output
    assert run.stats == []


@pytest.mark.postgres
def test_psycopg_imported_before_gevent_patching_is_refused_with_a_message() -> None:
    script = (
        f"import psycopg, locust\nfrom compliance_loadtest.db import connect\nconnect({POSTGRES_URL!r})\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "psycopg was imported before gevent patched the process" in proc.stderr
