"""DbBenchmarkUser: the seed suite's database microbenchmarks, plus data volume and index effectiveness."""

from __future__ import annotations

import json
import logging
import os
import random
import secrets
import time
from collections.abc import Sequence
from contextlib import suppress
from typing import Any

import gevent
from gevent.pool import Pool
from locust import User, task

from locust_scenarios import (
    EVIDENCE_STATUSES,
    EVIDENCE_TYPES,
    FRAMEWORKS,
    BenchmarkUserMixin,
    RoundFailed,
    database_url_for,
    rss_growth,
)
from locust_scenarios import db as _db

logger = logging.getLogger(__name__)

WORDS = (
    "security",
    "access",
    "policy",
    "encryption",
    "audit",
    "backup",
    "password",
    "incident",
    "review",
    "control",
    "vendor",
    "risk",
    "network",
    "firewall",
    "logging",
    "training",
    "retention",
    "privacy",
    "endpoint",
    "identity",
    "monitoring",
    "change",
    "recovery",
    "asset",
    "classification",
    "key",
)
STATUSES = EVIDENCE_STATUSES
SOURCES = ("manual_upload", "aws_config", "github", "okta", "jira")

SEED_BENCHMARKS = (
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
)
VOLUME_BENCHMARKS = ("db.volume_1k", "db.volume_10k", "db.volume_100k", "db.index_without", "db.index_with")

LOAD_CHUNK = 500
"""Rows generated and loaded per step when filling a table: about 10 ms of the worker's loop on SQLite,
the length of one of the volume benchmarks' rounds, so the other users of the worker wait no longer
than that for their responses to be read."""

# The query whose time is measured against data volume: a filtered top 50 that no index serves.
TOP_50 = (
    "SELECT id, title, quality_score FROM {t} WHERE status = ? AND quality_score > ? "
    "ORDER BY created_at DESC LIMIT 50"
)
# The query measured without and with its index: a narrow range of a high-cardinality column.
RANGE_QUERY = "SELECT count(*), avg(quality_score) FROM {t} WHERE created_at BETWEEN ? AND ?"


class DbBenchmarkUser(BenchmarkUserMixin, User):
    """Runs every database benchmark of the seed suite, plus query time against data volume and index
    effectiveness, once per round on the run's database (`--db-url`, or the embedded backend's).

    It touches only tables of its own (`bench_<random>_*`), created for the benchmarks and dropped at
    the end, so the backend's data is never disturbed; data is generated from the user's seeded random
    numbers and large volumes are loaded with COPY (PostgreSQL) or executemany transactions
    (SQLite), `LOAD_CHUNK` rows at a time. Each measured round is one `BENCH` request named
    `db.<benchmark>` (group `bench-db`); `db.index_without` / `db.index_with` keep their query plans
    in `extra_info`. Concurrent parts run as gevent pools: real concurrency on PostgreSQL, one at a
    time on SQLite (its calls do not yield). It has one task, so no weights, and runs only when named
    (`locust -f locust_scenarios DbBenchmarkUser`) or picked: see ApiBenchmarkUser for why.
    """

    bench_group = "bench-db"
    pool_size = 5
    """Connections shared by the 20 workers of the connection-pool benchmark."""

    def on_start(self) -> None:
        suffix = secrets.token_hex(3)
        self.prefix = f"bench_{suffix}_"
        self.app_name = f"bench_{suffix}"
        self.rng = random.Random(f"{getattr(self.environment.parsed_options, 'scenario_seed', 0)}|db-bench")
        self.tables: list[str] = []
        self.fts_tables: list[str] = []
        self._next_id = 0
        self.sql: _db.Database | None = None
        try:
            self.url = database_url_for(self.environment)
            self.postgres = _db.is_postgres(self.url)
            self.sql = self.connect()
        except Exception as exc:
            # Nothing to measure: say why once, fail the run, and let it end now, not at --run-time.
            logger.error("DbBenchmarkUser cannot reach its database: %s", exc)
            bad_input = isinstance(exc, _db.DatabaseUrlError)
            self.environment.process_exit_code = 2 if bad_input else 1
            self.fail_all(
                (*SEED_BENCHMARKS, *VOLUME_BENCHMARKS), f"set-up failed: cannot reach the database ({exc})"
            )
            self.finish_benchmarks()

    def on_stop(self) -> None:
        if self.sql is not None:
            self._drop_tables()
            self.db.conn.close()
            self.sql = None

    def connect(self) -> _db.Database:
        url = self.url
        if self.postgres:
            url += ("&" if "?" in url else "?") + f"application_name={self.app_name}"
        return _db.Database(_db.connect(url), self.postgres)

    @property
    def db(self) -> _db.Database:
        if self.sql is None:
            raise RuntimeError("DbBenchmarkUser has no connection (on_start failed)")
        return self.sql

    # --- data ---------------------------------------------------------------------------------

    def table(self, name: str) -> str:
        full = self.prefix + name
        self.db.evidence_table(full)
        self.tables.append(full)
        return full

    def rows(self, count: int, *, profile_id: int = 1) -> list[tuple[Any, ...]]:
        rng = self.rng
        start = self._next_id
        self._next_id += count
        now = 1_750_000_000
        return [
            (
                start + i,
                profile_id,
                f"{rng.choice(WORDS).capitalize()} {rng.choice(WORDS)} {rng.choice(WORDS)} evidence",
                " ".join(rng.choice(WORDS) for _ in range(20)),
                rng.choice(EVIDENCE_TYPES),
                rng.choice(STATUSES),
                rng.choice(FRAMEWORKS),
                round(rng.random(), 3),
                json.dumps({"source": rng.choice(SOURCES), "version": rng.randint(1, 5)}),
                now + start + i,
            )
            for i in range(count)
        ]

    def fill(self, table: str, count: int, *, profile_id: int = 1) -> None:
        """Generate and load `count` rows, `LOAD_CHUNK` at a time, letting the worker's loop turn between
        chunks. A worker kept busy for seconds stops answering heartbeats and is declared missing, and
        every request its other users have in flight is timed as long as the whole fill: the 100k table
        (about 2 s) showed as a 2.6 s login in an authentication benchmark's round."""
        while count > 0:
            step = min(count, LOAD_CHUNK)
            self.db.load(table, self.rows(step, profile_id=profile_id))
            count -= step
            self.let_the_loop_turn()

    def _drop_tables(self) -> None:
        for name in [*reversed(self.fts_tables), *reversed(self.tables)]:
            with suppress(Exception):  # one failed drop must not keep the others
                self.db.execute(f"DROP TABLE IF EXISTS {name}")
        self.tables.clear()
        self.fts_tables.clear()

    # --- the run ------------------------------------------------------------------------------

    @task
    def run_benchmarks(self) -> None:
        if self._bench_done or self.sql is None:
            return
        try:
            with self.section(*SEED_BENCHMARKS):
                self.seed_benchmarks()
            with self.section(*VOLUME_BENCHMARKS):
                self.volume_and_index_benchmarks()
        finally:
            self._drop_tables()
        # Not in `finally`: a user killed because the run stops has not finished its benchmarks.
        self.finish_benchmarks()

    def seed_benchmarks(self) -> None:
        sql = self.db
        evidence = self.table("evidence")
        self.fill(evidence, 1000)
        self.bench(
            "db.query_scaling",
            lambda: self._expect_rows(sql.rows(TOP_50.format(t=evidence), ["reviewed", 0.5]), 1, 50),
        )

        search = self.table("search")
        self.fill(search, 500)
        fts = sql.full_text_index(search)
        if fts:
            self.fts_tables.append(fts)
        self.bench(
            "db.full_text_search",
            lambda: self._expect_rows(sql.rows(sql.full_text_query(search), ["security"]), 1, 20),
        )

        agg = self.table("agg")
        self.fill(agg, 100, profile_id=1)
        self.fill(agg, 100, profile_id=2)
        self.bench(
            "db.aggregation",
            lambda: self._expect_rows(
                sql.rows(
                    f"SELECT status, evidence_type, count(*), avg(quality_score) FROM {agg} "
                    "GROUP BY status, evidence_type"
                ),
                1,
                35,
            ),
        )

        profiles = self.prefix + "profiles"
        sql.execute(f"CREATE TABLE {profiles} (id BIGINT PRIMARY KEY, name TEXT, industry TEXT)")
        self.tables.append(profiles)
        sql.insert_many(
            profiles, [(1, "Acme Ltd", "technology"), (2, "Globex", "finance")], ("id", "name", "industry")
        )
        self.bench(
            "db.join",
            lambda: self._expect_rows(
                sql.rows(
                    f"SELECT p.name, e.id, e.title, e.status FROM {profiles} p "
                    f"JOIN {agg} e ON e.profile_id = p.id "
                    f"WHERE p.id = ? ORDER BY e.created_at DESC",
                    [1],
                ),
                100,
                100,
            ),
        )

        self.bench(
            "db.connection_pool",
            lambda: self._connection_pool(evidence),
            extra_info={"workers": 20, "operations_each": 10, "pool_size": self.pool_size},
        )

        tx = self.table("tx")
        self.bench("db.transaction", lambda: self._transaction(tx))

        bulk = self.table("bulk")
        self.bench(
            "db.bulk_insert",
            lambda: sql.insert_many(bulk, self.rows(500)),
            after_round=lambda: sql.execute(f"DELETE FROM {bulk}"),
        )

        indexed = self.table("indexed")
        self.fill(indexed, 2000)
        sql.execute(f"CREATE INDEX {indexed}_fw_status ON {indexed} (framework, status)")
        query = f"SELECT id, title FROM {indexed} WHERE framework = ? AND status = ?"
        self.bench(
            "db.indexed_query",
            lambda: self._expect_rows(sql.rows(query, ["ISO27001", "reviewed"]), 1, 2000),
            extra_info={"query_plan": sql.explain(query, ["ISO27001", "reviewed"])},
        )

        self.bench("db.unindexed_query", lambda: self._unindexed(evidence))
        self.bench("db.concurrent_read", lambda: self._concurrent_read(evidence), extra_info={"workers": 15})
        self.bench("db.concurrent_write", lambda: self._concurrent_write(tx), extra_info={"workers": 10})
        self.bench(
            "db.large_result_memory",
            lambda: self._large_result(indexed),
            # The rows are held by the client: its memory is what reading in chunks keeps small.
            extra_info={"chunk": 100, "rss_of": "load generator"},
        )
        self.bench("db.connection_cleanup", self._connection_cleanup)

    def volume_and_index_benchmarks(self) -> None:
        sql = self.db
        volume = self.table("volume")
        loaded = 0
        for label, size in (("1k", 1_000), ("10k", 10_000), ("100k", 100_000)):
            start = time.perf_counter()
            self.fill(volume, size - loaded)
            load_s = time.perf_counter() - start
            loaded = size
            self.bench(
                f"db.volume_{label}",
                lambda: self._expect_rows(sql.rows(TOP_50.format(t=volume), ["reviewed", 0.5]), 50, 50),
                extra_info={"rows": size, "load_s": round(load_s, 4)},
            )
        sql.analyze(volume)
        query = RANGE_QUERY.format(t=volume)
        low = int(sql.scalar(f"SELECT min(created_at) FROM {volume}")) + 50_000
        params = [low, low + 99]

        def range_query() -> None:
            count = sql.rows(query, params)[0][0]
            if count != 100:
                raise RoundFailed(f"range query: expected 100 rows counted, got {count}")

        self.bench(
            "db.index_without",
            range_query,
            extra_info={"rows": loaded, "query": query, "query_plan": sql.explain(query, params)},
        )
        sql.execute(f"CREATE INDEX {volume}_created ON {volume} (created_at)")
        sql.analyze(volume)
        self.bench(
            "db.index_with",
            range_query,
            extra_info={"rows": loaded, "query": query, "query_plan": sql.explain(query, params)},
        )

    # --- benchmarks that need more than one query ------------------------------------------------

    @staticmethod
    def _expect_rows(rows: Sequence[Any], least: int, most: int) -> None:
        if not least <= len(rows) <= most:
            raise RoundFailed(f"expected between {least} and {most} rows, got {len(rows)}")

    def _connection_pool(self, table: str) -> None:
        pool = [self.connect() for _ in range(self.pool_size)]
        free = list(pool)
        outcomes: list[bool] = []
        try:

            def worker(n: int) -> bool:
                for i in range(10):
                    while not free:
                        gevent.sleep(0.001)  # wait for a connection to come back
                    conn = free.pop()
                    try:
                        conn.rows(
                            f"SELECT id, title, status FROM {table} WHERE id = ?", [(n * 10 + i) % 1000]
                        )
                        outcomes.append(True)
                    except Exception:
                        outcomes.append(False)
                    finally:
                        free.append(conn)
                    gevent.sleep(0)
                return True

            Pool(20).map(worker, range(20))
        finally:
            for conn in pool:
                conn.conn.close()
        ok = sum(outcomes)
        if ok < 0.9 * 200:
            raise RoundFailed(
                f"connection pool: expected at least 90% of 200 operations to succeed, {ok} did"
            )

    def _transaction(self, table: str) -> None:
        sql = self.db
        rows = self.rows(10)
        with sql.transaction():
            for row in rows:
                sql.execute(
                    f"INSERT INTO {table} ({', '.join(_db.EVIDENCE_COLUMNS)}) "
                    f"VALUES ({', '.join('?' for _ in _db.EVIDENCE_COLUMNS)})",
                    row,
                )
            sql.execute(
                f"UPDATE {table} SET status = ? WHERE id >= ? AND id <= ?",
                ["reviewed", rows[0][0], rows[-1][0]],
            )
            count = sql.scalar(
                f"SELECT count(*) FROM {table} WHERE id >= ? AND id <= ? AND status = ?",
                [rows[0][0], rows[-1][0], "reviewed"],
            )
        if count != 10:
            raise RoundFailed(f"transaction: expected the 10 inserted rows updated, counted {count}")

    def _unindexed(self, table: str) -> dict[str, Any]:
        sql = self.db
        start = time.perf_counter()
        text_rows = sql.rows(f"SELECT id FROM {table} WHERE description LIKE ?", ["%encryption%"])
        text_s = time.perf_counter() - start
        condition, params = sql.json_contains("metadata", "source", "github")
        start = time.perf_counter()
        json_rows = sql.rows(f"SELECT id FROM {table} WHERE {condition}", params)
        json_s = time.perf_counter() - start
        if not text_rows or not json_rows:
            raise RoundFailed(
                f"unindexed query: expected matches, got {len(text_rows)} (text) and {len(json_rows)} (JSON)"
            )
        return {"text_contains_s": text_s, "json_contains_s": json_s}

    def _concurrent_read(self, table: str) -> dict[str, Any]:
        conns = [self.connect() for _ in range(15)]
        times: list[float] = []
        try:

            def read(n: int) -> bool:
                start = time.perf_counter()
                try:
                    rows = conns[n].rows(TOP_50.format(t=table), [STATUSES[n % len(STATUSES)], 0.2])
                except Exception:
                    return False
                times.append(time.perf_counter() - start)
                return bool(rows)

            ok = sum(Pool(15).map(read, range(15)))
        finally:
            for conn in conns:
                conn.conn.close()
        if ok != 15:
            raise RoundFailed(f"concurrent read: expected 15 reads to succeed, {ok} did")
        return {"read_mean_s": sum(times) / len(times), "read_max_s": max(times)}

    def _concurrent_write(self, table: str) -> dict[str, Any]:
        conns = [self.connect() for _ in range(10)]
        before = int(self.db.scalar(f"SELECT count(*) FROM {table}"))
        batches = [self.rows(5) for _ in range(10)]
        try:

            def write(n: int) -> int:
                done = 0
                for row in batches[n]:
                    try:
                        conns[n].execute(
                            f"INSERT INTO {table} ({', '.join(_db.EVIDENCE_COLUMNS)}) "
                            f"VALUES ({', '.join('?' for _ in _db.EVIDENCE_COLUMNS)})",
                            row,
                        )
                        done += 1
                    except Exception:
                        pass
                    # SQLite calls never yield: let the other writers (and the worker's heartbeat) run.
                    gevent.sleep(0)
                return done

            written = sum(Pool(10).map(write, range(10)))
        finally:
            for conn in conns:
                conn.conn.close()
        after = int(self.db.scalar(f"SELECT count(*) FROM {table}"))
        if written < 0.8 * 50:
            raise RoundFailed(
                f"concurrent write: expected at least 80% of 50 inserts to succeed, {written} did"
            )
        if after - before != written:
            raise RoundFailed(
                f"concurrent write: {written} inserts succeeded but the row count grew by {after - before}"
            )
        return {"writes_succeeded": written}

    def _large_result(self, table: str) -> dict[str, Any]:
        measures: dict[str, Any] = {}
        total = 0
        query = f"SELECT {', '.join(_db.EVIDENCE_COLUMNS)} FROM {table} ORDER BY id"
        with rss_growth(os.getpid(), measures):
            if self.postgres:
                # A server-side cursor, so the client holds one chunk at a time.
                with self.db.conn.transaction(), self.db.conn.cursor(name=f"{self.prefix}chunks") as cur:
                    cur.execute(query)
                    while chunk := cur.fetchmany(100):
                        total += len(chunk)
            else:
                cur = self.db.conn.execute(query)
                while chunk := cur.fetchmany(100):
                    total += len(chunk)
        if total != 2000:
            raise RoundFailed(f"large result: expected 2000 rows read in chunks of 100, got {total}")
        return measures

    def _connection_cleanup(self) -> dict[str, Any]:
        database_file = "" if self.postgres else str(_db.sqlite_path(self.url))
        before = self.db.server_connections(self.app_name, database_file)
        conns = [self.connect() for _ in range(10)]
        for conn in conns:
            conn.scalar("SELECT 1")
        for conn in conns:
            conn.conn.close()
        after = self.db.server_connections(self.app_name, database_file)
        settle = time.perf_counter() + 1.0
        while after - before > 2 and time.perf_counter() < settle:
            # A closed PostgreSQL session leaves pg_stat_activity a moment after the client hung up.
            time.sleep(0.01)
            after = self.db.server_connections(self.app_name, database_file)
        if after - before > 2:
            raise RoundFailed(
                f"connection cleanup: expected at most 2 connections left over, {after - before} were"
            )
        return {"connections_left_over": after - before}
