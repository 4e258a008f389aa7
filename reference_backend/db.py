"""Database access for SQLite and PostgreSQL behind one small interface; no ORM.

SQL is written once with `?` placeholders and rewritten to `%s` for psycopg. Each thread (the
threadpool that runs the sync handlers) holds its own connection: SQLite connections are not shared
between threads, and a PostgreSQL connection per worker thread bounds the connections to the pool size.
Rows come back as dicts with ids, timestamps and JSON normalised to plain str / dict / list.

This module must not know about HTTP: the routes translate its results and errors.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import tempfile
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext, suppress
from pathlib import Path
from typing import Any

from reference_backend import schema

JSON_COLUMNS = frozenset(
    {
        "data_processing",
        "frameworks_of_interest",
        "recommendations",
        "details",
        "framework_mappings",
        "tags",
        "metadata",
        "context",
        "citations",
        "parameters",
    }
)


class DatabaseUnavailable(RuntimeError):
    """The database could not be reached (the message never contains the DSN)."""


class MissingDriver(RuntimeError):
    """PostgreSQL was asked for and psycopg 3, the `postgres` extra, is not installed."""


def now_iso() -> str:
    """The current UTC time as the text every timestamp column stores on SQLite."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


def new_id() -> str:
    return str(uuid.uuid4())


def _normalise(row: dict[str, Any]) -> dict[str, Any]:
    for key, value in row.items():
        if value is None:
            continue
        if isinstance(value, uuid.UUID):
            row[key] = str(value)
        elif isinstance(value, dt.datetime):
            row[key] = value.astimezone(dt.UTC).isoformat(timespec="microseconds")
        elif key in JSON_COLUMNS and isinstance(value, str):
            row[key] = json.loads(value)
    return row


class Database:
    """One database, SQLite or PostgreSQL; `dialect` is `"sqlite"` or `"postgres"`."""

    def __init__(self, url: str | None) -> None:
        self._local = threading.local()
        self._lock = threading.Lock()
        # SQLite allows one writer. Queuing this process's writers on a Python lock wakes the next one
        # the moment the last commits; SQLite's own busy handler sleeps in steps of up to 100 ms.
        self._write_lock = threading.Lock()
        self._all_connections: list[Any] = []
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        if url and url.startswith(("postgresql://", "postgres://")):
            try:
                import psycopg  # noqa: F401  (said here, not by the first request that connects)
            except ImportError:
                raise MissingDriver(
                    "PostgreSQL needs psycopg 3, which is not installed: "
                    "pip install 'compliance-loadtest[postgres]'"
                ) from None
            self.dialect = "postgres"
            self.url = url
            self.path: Path | None = None
        else:
            self.dialect = "sqlite"
            if url:
                self.path = Path(url.removeprefix("sqlite:///").removeprefix("sqlite://"))
            else:
                self._tempdir = tempfile.TemporaryDirectory(prefix="cgpt-backend-")
                self.path = Path(self._tempdir.name) / "compliancegpt.sqlite3"
            self.url = f"sqlite:///{self.path}"

    @property
    def public_url(self) -> str:
        """The URL without a password, safe to print."""
        if self.dialect == "sqlite":
            return self.url
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(self.url)
        if parts.password:
            netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
            parts = parts._replace(netloc=netloc)
        return urlunsplit(parts)

    # -- connections -------------------------------------------------------------------------------

    def _connect(self) -> Any:
        conn: Any
        if self.dialect == "sqlite":
            assert self.path is not None
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10)
            for pragma in schema.SQLITE_PRAGMAS:
                conn.execute(pragma)
        else:
            import psycopg

            try:
                conn = psycopg.connect(self.url, autocommit=True, connect_timeout=5)
            except psycopg.OperationalError as exc:
                raise DatabaseUnavailable("PostgreSQL is unreachable") from exc
        with self._lock:
            self._all_connections.append(conn)
        return conn

    def connection(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    def _discard(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with self._lock:
                if conn in self._all_connections:
                    self._all_connections.remove(conn)
            with suppress(Exception):
                conn.close()

    def close(self) -> None:
        with self._lock:
            conns, self._all_connections = self._all_connections, []
        for conn in conns:
            with suppress(Exception):
                conn.close()
        if self._tempdir is not None:
            self._tempdir.cleanup()

    # -- statements --------------------------------------------------------------------------------

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.dialect == "postgres" else sql

    def _run(self, fn: Any) -> Any:
        """Run fn(connection); on a broken connection, discard it and report the database unavailable."""
        if self.dialect == "sqlite":
            return fn(self.connection())
        import psycopg

        try:
            return fn(self.connection())
        except psycopg.OperationalError as exc:
            self._discard()
            if getattr(self._local, "in_tx", False):
                raise DatabaseUnavailable("PostgreSQL connection failed") from exc
        # Outside a transaction the statement is safe to run again: a connection broken by an earlier
        # outage (or a server restart) is replaced at once instead of failing this request.
        try:
            return fn(self.connection())
        except psycopg.OperationalError as exc:
            self._discard()
            raise DatabaseUnavailable("PostgreSQL connection failed") from exc

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        def go(conn: Any) -> list[dict[str, Any]]:
            cur = conn.execute(self._sql(sql), params)
            names = [d[0] for d in cur.description]
            return [_normalise(dict(zip(names, row, strict=True))) for row in cur.fetchall()]

        result: list[dict[str, Any]] = self._run(go)
        return result

    def fetchone(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        rows = self.fetchall(sql, params)
        return rows[0] if rows else None

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        def go(conn: Any) -> Any:
            row = conn.execute(self._sql(sql), params).fetchone()
            return None if row is None else row[0]

        return self._run(go)

    def _writing(self) -> Any:
        """The write lock for a SQLite write outside a transaction (a transaction holds it already)."""
        if self.dialect == "sqlite" and not getattr(self._local, "in_tx", False):
            return self._write_lock
        return nullcontext()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement (a write: reads use the fetch methods); returns the affected row count."""
        with self._writing():
            return int(self._run(lambda conn: conn.execute(self._sql(sql), params).rowcount))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        def go(conn: Any) -> None:
            if self.dialect == "sqlite":
                conn.executemany(sql, rows)
            else:
                with conn.cursor() as cur:
                    cur.executemany(self._sql(sql), rows)

        with self._writing():
            self._run(go)

    @contextmanager
    def transaction(self) -> Iterator[Database]:
        """All statements in the block commit together or not at all (SQLite: BEGIN IMMEDIATE, so two
        writers queue on the lock instead of failing to upgrade a read lock)."""
        conn = self.connection()
        if getattr(self._local, "in_tx", False):
            yield self
            return
        self._local.in_tx = True
        try:
            if self.dialect == "sqlite":
                with self._write_lock:
                    conn.execute("BEGIN IMMEDIATE")
                    try:
                        yield self
                    except BaseException:
                        conn.execute("ROLLBACK")
                        raise
                    conn.execute("COMMIT")
            else:
                import psycopg

                try:
                    with conn.transaction():
                        yield self
                except psycopg.OperationalError as exc:
                    self._discard()
                    raise DatabaseUnavailable("PostgreSQL connection failed") from exc
        finally:
            self._local.in_tx = False

    def ping(self) -> None:
        """Raise DatabaseUnavailable unless a trivial query answers."""
        try:
            self.scalar("SELECT 1")
        except sqlite3.Error as exc:
            raise DatabaseUnavailable("SQLite is unavailable") from exc

    # -- schema ------------------------------------------------------------------------------------

    def create_schema(self) -> None:
        ddl = schema.sqlite_ddl() if self.dialect == "sqlite" else schema.postgres_ddl()
        conn = self.connection()
        if self.dialect == "sqlite":
            conn.executescript(ddl)
        else:
            with conn.transaction():
                # Two backends starting on one database must not race on CREATE ... IF NOT EXISTS.
                conn.execute("SELECT pg_advisory_xact_lock(727372)")
                for stmt in [*schema.split_statements(ddl), *schema.POSTGRES_STATUS_COPY]:
                    conn.execute(stmt)
