"""DbBenchmarkUser runs every database benchmark on SQLite and PostgreSQL in its own tables, then stops."""

from __future__ import annotations

import argparse
import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import gevent
import gevent.socket
import pandas as pd
import psycopg
import pytest
from locust.env import Environment

from analysis._load import read_benchmarks
from locust_scenarios.db_benchmark import LOAD_CHUNK, DbBenchmarkUser
from tests.backend_process import Backend, free_port, run_backend
from tests.benchmarks.locust_run import LOCUST, SCENARIOS, clean_environ, run_locust, write_config

DB_BENCHMARKS = {
    "db.query_scaling",
    "db.full_text_search",
    "db.aggregation",
    "db.join",
    "db.connection_pool",
    "db.transaction",
    "db.bulk_insert",
    "db.indexed_query",
    "db.unindexed_query",
    "db.concurrent_read",
    "db.concurrent_write",
    "db.large_result_memory",
    "db.connection_cleanup",
    "db.volume_1k",
    "db.volume_10k",
    "db.volume_100k",
    "db.index_with",
    "db.index_without",
}


@pytest.fixture(scope="module")
def sqlite_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    """The reference backend on a SQLite file whose path the benchmark is given."""
    tmp = tmp_path_factory.mktemp("sqlite-backend")
    with run_backend(tmp, database_url=f"sqlite:///{tmp / 'backend.db'}") as b:
        yield b


def _tables(backend: Backend) -> list[str]:
    url = backend.database_url or ""
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url[len("sqlite:///") :]) as conn:
            return sorted(r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        ).fetchall()
        return sorted(r[0] for r in rows)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_backend(request: pytest.FixtureRequest) -> Backend:
    name = "sqlite_backend" if request.param == "sqlite" else "pg_backend"
    backend: Backend = request.getfixturevalue(name)
    return backend


def test_every_db_benchmark_runs_its_rounds_in_its_own_tables(db_backend: Backend, run_dir: Path) -> None:
    before = _tables(db_backend)
    config = write_config(run_dir / "performance_config.json", warmup_iterations=1, benchmark_rounds=2)
    run = run_locust(
        run_dir,
        "DbBenchmarkUser",
        "-u",
        "1",
        "-r",
        "1",
        "-H",
        db_backend.url,
        "--db-url",
        db_backend.database_url or "",
        "--benchmark-config",
        str(config),
    )

    assert run.returncode == 0, run.output[-3000:]
    assert run.ended_by_itself, run.output[-3000:]
    results = run.results()
    assert results["failed_benchmarks"] == []
    by_name = {b["name"]: b for b in results["benchmarks"]}
    assert set(by_name) == DB_BENCHMARKS
    for name, bench in by_name.items():
        assert bench["group"] == "bench-db", name
        assert bench["stats"]["rounds"] == 2, name
        assert len(bench["stats"]["data"]) == 2, name
    # The same query, with and without its index, each with the plan the database chose.
    assert "_created" in by_name["db.index_with"]["extra_info"]["query_plan"]
    assert "_created" not in by_name["db.index_without"]["extra_info"]["query_plan"]
    assert by_name["db.volume_100k"]["extra_info"]["rows"] == 100_000
    assert isinstance(by_name["db.large_result_memory"]["extra_info"]["rss_growth_mb"], float)
    # The analysis reads the file as it is.
    table = read_benchmarks(run_dir / "benchmark_results.json")
    assert sorted(table["name"]) == sorted(DB_BENCHMARKS)
    assert set(table["rounds"]) == {2.0}

    # Warm-up rounds reached no stats: each benchmark has exactly its measured rounds.
    stats = run.stats()
    for name in DB_BENCHMARKS:
        assert stats[("BENCH", name)]["Request Count"] == "2", name
        assert stats[("BENCH", name)]["Failure Count"] == "0", name

    record = pd.read_parquet(run_dir / "requests")
    bench_rows = record[record["request_type"] == "BENCH"]
    assert bench_rows.groupby("name").size().to_dict() == dict.fromkeys(DB_BENCHMARKS, 2)
    assert set(bench_rows["group"]) == {"bench-db"}

    # Its tables are gone; the backend's are untouched.
    after = _tables(db_backend)
    assert after == before
    assert not [t for t in after if t.startswith("bench_")]


@pytest.mark.postgres
def test_two_bare_workers_run_what_the_master_names_and_the_master_stops_the_run(
    pg_backend: Backend, run_dir: Path
) -> None:
    """Two `locust -f locust_scenarios --worker` processes with neither class names nor options: the
    master's named benchmark user, database and config reach them when the test starts, each sends its
    rounds to the master, and the master ends the run once both users are done."""
    config = write_config(run_dir / "performance_config.json", warmup_iterations=0, benchmark_rounds=1)
    port = str(free_port())  # not Locust's default 5557: other runs on this machine may hold it
    logs = [run_dir.parent / f"worker-{n}.log" for n in (1, 2)]
    workers = []
    try:
        for log_path in logs:
            with log_path.open("w") as log:
                workers.append(subprocess.Popen(
                    [LOCUST, "-f", str(SCENARIOS), "--worker", "--master-port", port],
                    stdout=log, stderr=subprocess.STDOUT, cwd=run_dir.parent, env=clean_environ(),
                ))  # fmt: skip
        master = ["--master", "--expect-workers", "2", "--master-bind-port", port]
        database = ["--db-url", pg_backend.database_url or ""]
        run = run_locust(run_dir, "DbBenchmarkUser", *master, "-u", "2", "-r", "2", "-H", pg_backend.url,
                         *database, "--benchmark-config", str(config))  # fmt: skip
        codes = [w.wait(timeout=60) for w in workers]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.wait()

    worker_output = "".join(p.read_text()[-2000:] for p in logs)
    assert run.returncode == 0, run.output[-3000:]
    assert run.ended_by_itself, run.output[-3000:]
    assert codes == [0, 0], worker_output
    results = run.results()
    assert results["failed_benchmarks"] == []
    by_name = {b["name"]: b for b in results["benchmarks"]}
    assert set(by_name) == DB_BENCHMARKS, run.output[-3000:] + worker_output
    for name, bench in by_name.items():
        # One round from each of the two users, gathered on the master from two processes.
        assert bench["stats"]["rounds"] == 1 * 2, name
        assert bench["extra_info"]["users"] == 2, name
        assert bench["extra_info"]["rounds_expected"] == 2, name


@pytest.fixture
def sqlite_bench_user(tmp_path: Path) -> Iterator[DbBenchmarkUser]:
    """A DbBenchmarkUser on a SQLite file of its own, started as a run starts it, outside a run."""
    database = tmp_path / "bench.db"
    sqlite3.connect(database).close()
    options = argparse.Namespace(db_url=f"sqlite:///{database}", scenario_seed=0)
    user = DbBenchmarkUser(Environment(user_classes=[DbBenchmarkUser], parsed_options=options))
    user.on_start()
    yield user
    user.on_stop()
    with sqlite3.connect(database) as conn:
        assert conn.execute("SELECT name FROM sqlite_master WHERE name LIKE 'bench_%'").fetchall() == []


@contextmanager
def other_user() -> Iterator[list[float]]:
    """Another user of the same worker: it waits on a socket whose answer is always there at once, as
    a user waits on its response, and is woken only when the loop polls. Yields when each answer was
    read."""
    left, right = (gevent.socket.socket(fileno=s.detach()) for s in socket.socketpair())
    answers: list[float] = []

    def wait_for_answers() -> None:
        while True:
            right.sendall(b"x")
            gevent.socket.wait_read(left.fileno())
            left.recv(1)
            answers.append(time.perf_counter())

    waiting = gevent.spawn(wait_for_answers)
    try:
        gevent.sleep(0.01)
        yield answers
    finally:
        waiting.kill()
        left.close()
        right.close()


def test_filling_a_table_lets_the_workers_other_users_read_their_responses(
    sqlite_bench_user: DbBenchmarkUser,
) -> None:
    """While the benchmark fills its volume table, another user of the worker is woken between chunks,
    not once the whole table is loaded."""
    table = sqlite_bench_user.table("volume")
    rows = 10 * LOAD_CHUNK
    with other_user() as answers:
        start = time.perf_counter()
        sqlite_bench_user.fill(table, rows)
        end = time.perf_counter()
    during = [t for t in answers if start <= t <= end]
    # At least once after every chunk but the last (yielding with sleep(0), it was woken once in all).
    assert len(during) >= 9, f"{len(during)} answers read while {rows} rows were loaded"


def test_rounds_that_block_the_loop_let_it_turn_between_them(sqlite_bench_user: DbBenchmarkUser) -> None:
    """A benchmark whose rounds block the worker's loop (SQLite calls do) gives the loop a turn before
    each round, so the worker's other users read their responses between rounds, not after the last."""
    count_to_20000 = (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000) "
        "SELECT count(*) FROM n"
    )
    with other_user() as answers:
        start = time.perf_counter()
        sqlite_bench_user.bench("db.blocking", lambda: sqlite_bench_user.db.rows(count_to_20000))
        end = time.perf_counter()
    config = sqlite_bench_user.bench_config
    rounds = config.warmup_iterations + config.benchmark_rounds
    during = [t for t in answers if start <= t <= end]
    assert len(during) >= rounds - 1, f"{len(during)} answers read during {rounds} blocking rounds"
