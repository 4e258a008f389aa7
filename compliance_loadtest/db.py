"""Direct database access for the users that load the database itself, not the API.

`connect` opens the backend's SQLite file or a PostgreSQL server (psycopg 3, the `postgres` extra);
`timed_query` turns one database call into a
Locust request event of type `SQL`, so database timings land in the same stats, exact record and
thresholds as HTTP.

Under Locust the process is monkey-patched by gevent. psycopg chooses how it waits for its socket when
it is first imported: after the patching it waits through the patched `select`/`selectors`, so a query
in flight yields to the other users; imported before, it waits in C and stalls every user of the
process. `connect` imports psycopg only when called (always after `import locust`) and refuses a
psycopg that chose the blocking wait. SQLite calls run in C and cannot yield: keep its busy timeout short.

This module must not import psycopg at import time, nor hold state shared between users.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, unquote

from compliance_loadtest.errors import UsageError
from compliance_loadtest.redact import redact_url

T = TypeVar("T")

# A connection of either kind; both offer execute(), cursor() and close().
Connection = Any


class DatabaseUrlError(UsageError):
    """A database URL that cannot be used; the message says which option or value and why."""


POSTGRES_EXTRA = "pip install 'compliance-loadtest[postgres]'"


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def check_driver(url: str) -> None:
    """Refuse a PostgreSQL URL when psycopg 3 is not installed (it is the `postgres` extra), before
    any process starts on it; psycopg itself is not imported here."""
    if not is_postgres(url):
        return
    try:
        installed = importlib.util.find_spec("psycopg") is not None
    except (ImportError, ValueError):
        installed = False
    if not installed:
        raise DatabaseUrlError(f"PostgreSQL needs psycopg 3, which is not installed: {POSTGRES_EXTRA}")


def sqlite_path(url: str) -> Path:
    """The file behind a SQLite path or a SQLAlchemy-style URL.

    `sqlite:///relative.db` is relative to the working directory, `sqlite:////abs/file.db` absolute,
    as in SQLAlchemy, so the backend's own `--database-url` can be passed as is.
    """
    if url.startswith("sqlite:"):
        if not url.startswith("sqlite:///") or len(url) == len("sqlite:///"):
            raise DatabaseUrlError(f"SQLite URL {url!r} names no file (expected sqlite:///path/to/file.db)")
        return Path(unquote(url[len("sqlite:///") :].split("?", 1)[0]))
    if "://" in url:
        scheme = url.split("://", 1)[0]
        raise DatabaseUrlError(
            f"unsupported database URL scheme {scheme!r}: give a postgresql:// URL, a sqlite:/// URL or a "
            "path to a SQLite file"
        )
    return Path(url)


def redact(url: str) -> str:
    """The URL without its password, for messages (the library's one redactor, `redact.redact_url`)."""
    return redact_url(url)


def connect(url: str, *, busy_timeout: float = 1.0, connect_timeout: float = 10.0) -> Connection:
    """Open `url`: a PostgreSQL URL (autocommit psycopg 3 connection) or a SQLite file (read-write).

    SQLite connections are in autocommit mode too (`isolation_level=None`): statements that must go
    together are wrapped in BEGIN/COMMIT by the caller. `busy_timeout` (seconds) is how long SQLite
    waits for a lock before answering "database is locked"; that wait blocks the whole process.
    """
    if is_postgres(url):
        return _connect_postgres(url, connect_timeout)
    path = sqlite_path(url)
    if not path.is_file():
        raise DatabaseUrlError(f"SQLite database {str(path)!r} does not exist (from database URL {url!r})")
    # mode=rw: never create an empty database where the backend's file was expected.
    conn = sqlite3.connect(
        f"file:{quote(str(path))}?mode=rw",
        uri=True,
        timeout=busy_timeout,
        isolation_level=None,
        check_same_thread=False,
    )
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
    return conn


def _connect_postgres(url: str, connect_timeout: float) -> Connection:
    try:
        import psycopg
        import psycopg.waiting
    except ImportError as exc:
        raise ImportError(f"PostgreSQL needs psycopg 3, the postgres extra: {POSTGRES_EXTRA}") from exc
    if _gevent_patched() and getattr(psycopg.waiting, "wait_c", None) is psycopg.waiting.wait:
        raise RuntimeError(
            "psycopg was imported before gevent patched the process, so its queries would block every "
            "simulated user: import locust before psycopg (or set PSYCOPG_WAIT_FUNC=wait_poll)"
        )
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=max(1, round(connect_timeout)))
    except psycopg.OperationalError as exc:
        # psycopg's message may repeat the DSN; say where we connected without the password.
        raise psycopg.OperationalError(
            f"cannot connect to {redact(url)}: {str(exc).replace(url, redact(url))}"
        ) from None


def _gevent_patched() -> bool:
    import sys

    monkey = sys.modules.get("gevent.monkey")
    return bool(monkey and monkey.is_module_patched("select"))


# The evidence columns of the benchmarks' own tables (`Database.evidence_table`).
EVIDENCE_COLUMNS = (
    "id",
    "profile_id",
    "title",
    "description",
    "evidence_type",
    "status",
    "framework",
    "quality_score",
    "metadata",
    "created_at",
)


class Database:
    """One connection and the few places where SQLite and PostgreSQL differ. SQL is written with `?`
    placeholders; `q` turns them into psycopg's `%s`."""

    def __init__(self, conn: Connection, postgres: bool) -> None:
        self.conn = conn
        self.postgres = postgres

    def q(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.postgres else sql

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.conn.execute(self.q(sql), tuple(params))

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return list(self.execute(sql, params).fetchall())

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self.execute(sql, params).fetchone()
        return row[0] if row else None

    @contextmanager
    def transaction(self, *, immediate: bool = False) -> Iterator[None]:
        """BEGIN ... COMMIT (ROLLBACK on error); connections from `connect` are in autocommit mode.
        `immediate` takes SQLite's write lock at BEGIN, as a row lock (`FOR UPDATE`) would."""
        if self.postgres:
            with self.conn.transaction():
                yield
            return
        self.conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
        try:
            yield
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def insert_many(
        self, table: str, rows: Sequence[Sequence[Any]], columns: Sequence[str] = EVIDENCE_COLUMNS
    ) -> None:
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"
        with self.transaction():
            if self.postgres:
                with self.conn.cursor() as cur:
                    cur.executemany(self.q(sql), rows)
            else:
                self.conn.executemany(sql, rows)

    def load(
        self, table: str, rows: Sequence[Sequence[Any]], columns: Sequence[str] = EVIDENCE_COLUMNS
    ) -> None:
        """Load rows fast: COPY on PostgreSQL, executemany in a transaction on SQLite."""
        if not self.postgres:
            self.insert_many(table, rows, columns)
            return
        with self.conn.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def analyze(self, table: str) -> None:
        """Refresh the planner's statistics (PostgreSQL). SQLite keeps them in a `sqlite_stat1` table it
        would create in the backend's database, and plans an indexed range without them, so not there."""
        if self.postgres:
            self.execute(f"ANALYZE {table}")

    def explain(self, sql: str, params: Sequence[Any]) -> str:
        """The query plan, as the database prints it."""
        if self.postgres:
            return "\n".join(str(r[0]) for r in self.rows("EXPLAIN " + sql, params))
        return "\n".join(str(r[-1]) for r in self.rows("EXPLAIN QUERY PLAN " + sql, params))

    def evidence_table(self, name: str) -> None:
        json_type = "JSONB" if self.postgres else "TEXT"
        real = "DOUBLE PRECISION" if self.postgres else "REAL"
        self.execute(
            f"CREATE TABLE {name} (id BIGINT PRIMARY KEY, profile_id BIGINT, title TEXT, description TEXT, "
            f"evidence_type TEXT, status TEXT, framework TEXT, quality_score {real}, metadata {json_type}, "
            f"created_at BIGINT)"
        )

    def full_text_index(self, table: str) -> str:
        """Index title and description for full-text search; the table (or index) to drop afterwards."""
        if self.postgres:
            self.execute(
                f"CREATE INDEX {table}_fts ON {table} USING gin "
                f"(to_tsvector('english', title || ' ' || description))"
            )
            return ""
        fts = f"{table}_fts"
        self.execute(
            f"CREATE VIRTUAL TABLE {fts} USING fts5(title, description, content='{table}', "
            f"content_rowid='id')"
        )
        self.execute(
            f"INSERT INTO {fts} (rowid, title, description) SELECT id, title, description FROM {table}"
        )
        return fts

    def full_text_query(self, table: str) -> str:
        """Ranked full-text search for one term, top 20."""
        if self.postgres:
            doc = "to_tsvector('english', title || ' ' || description)"
            return (
                f"SELECT id, title, ts_rank({doc}, query) AS rank FROM {table}, "
                f"plainto_tsquery('english', ?) AS query WHERE {doc} @@ query ORDER BY rank DESC LIMIT 20"
            )
        return (
            f"SELECT s.id, s.title FROM {table}_fts JOIN {table} s ON s.id = {table}_fts.rowid "
            f"WHERE {table}_fts MATCH ? ORDER BY rank LIMIT 20"
        )

    def json_contains(self, column: str, key: str, value: str) -> tuple[str, list[Any]]:
        """A condition `column` (a JSON object) has `key` equal to `value`, with its parameters."""
        if self.postgres:
            return f"{column} @> ?::jsonb", [json.dumps({key: value})]
        return f"json_extract({column}, '$.{key}') = ?", [value]

    def server_connections(self, application_name: str, database_file: str) -> int:
        """Connections the database holds for this benchmark: PostgreSQL backends with our application
        name; for SQLite, this process's open handles on the database file."""
        if self.postgres:
            return int(
                self.scalar(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = ?", [application_name]
                )
            )
        import psutil

        target = os.path.realpath(database_file)
        return sum(1 for f in psutil.Process().open_files() if os.path.realpath(f.path) == target)

    def full_text_kind(self) -> str:
        """The backend's full-text index on `evidence`: `fts5` (SQLite), `tsvector` (PostgreSQL) or ""."""
        if not self.postgres:
            found = self.execute("SELECT 1 FROM sqlite_master WHERE name = 'evidence_fts'").fetchone()
            return "fts5" if found else ""
        found = self.execute(
            "SELECT 1 FROM information_schema.columns WHERE table_name = 'evidence' "
            "AND column_name = 'search_vector' AND table_schema = current_schema()"
        ).fetchone()
        return "tsvector" if found else ""

    def scan(self, sql: str, params: Sequence[Any], chunk_size: int) -> int:
        """Read a large result `chunk_size` rows at a time (`fetchmany`); the number of rows read. On
        PostgreSQL through a server-side cursor, so the server sends the rows in chunks too."""
        if not self.postgres:
            return _drain(self.execute(sql, params), chunk_size)
        with self.conn.transaction(), self.conn.cursor(name="scan_in_chunks") as cursor:
            cursor.execute(self.q(sql), tuple(params))
            return _drain(cursor, chunk_size)


def _drain(cursor: Any, size: int) -> int:
    count = 0
    while rows := cursor.fetchmany(size):
        count += len(rows)
    return count


def timed_query(
    request_event: Any,
    name: str,
    fn: Callable[[], T],
    *,
    group: str = "db",
    context: Mapping[str, Any] | None = None,
) -> T | None:
    """Run `fn()` as one `SQL` request named `name`; return its result, or None when it raised.

    The response length is the number of rows: `len()` of a list or tuple result, an int result as
    is, otherwise 0. Any exception becomes the request's failure; it does not propagate, so a locked
    or unreachable database is a failure in the stats, never a dead user.
    """
    start_time = time.time()
    start = time.perf_counter()
    result: T | None = None
    exception: Exception | None = None
    try:
        result = fn()
    except Exception as exc:
        exception = exc
    elapsed_ms = (time.perf_counter() - start) * 1000
    request_event.fire(
        request_type="SQL",
        name=name,
        response_time=elapsed_ms,
        response_length=_row_count(result),
        response=None,
        context={**(context or {}), "group": group},
        exception=exception,
        start_time=start_time,
        url=None,
    )
    return result


def _row_count(result: object) -> int:
    if isinstance(result, bool):
        return 0
    if isinstance(result, int):
        return result
    if isinstance(result, list | tuple):
        return len(result)
    return 0
