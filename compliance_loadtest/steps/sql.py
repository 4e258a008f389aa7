"""Queries sent straight to the backend's database (SQLite or PostgreSQL), each an `SQL` stat.

`SqlSession` is one user's connection (`--db-url`, or the embedded backend's database), kept in
`user.workspace.db` so it is closed when the user stops. The named steps are the queries behind the
service's busiest pages; `query` runs any statement of your own as a stat. Every query is timed with
`perf_counter`; a locked database, a lost connection or a wrong answer is a failure, never a dead user.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from compliance_loadtest.api import FRAMEWORKS, SEARCH_TERMS
from compliance_loadtest.db import Database, connect, is_postgres, timed_query
from compliance_loadtest.plugin.embedded import database_url_for
from compliance_loadtest.steps import evidence
from compliance_loadtest.steps.base import StepFailed, attempt, required

logger = logging.getLogger(__name__)

T = TypeVar("T")
Rows = list[tuple[Any, ...]]


class QueryCheckError(Exception):
    """A query ran but its answer is wrong (e.g. the organisation's own rows are missing)."""


@dataclass
class SqlSettings:
    """How a user's database session behaves; `DatabaseStressUser` sets them as class attributes."""

    hot_rows: int = 5
    """How many rows the concurrent updates share: the oldest evidence rows of the database."""
    chunk_size: int = 100
    """Rows per `fetchmany` when reading a large result."""
    scan_rows: int = 2000
    """Most rows read by one large-result scan."""
    sqlite_busy_timeout: float = 1.0
    """Seconds SQLite waits for a lock before "database is locked". The wait happens inside SQLite's C
    code and stops every user of the process meanwhile, so it is kept short."""


class SqlSession:
    """One user's database connection, its dialect, and the hot rows it contends for."""

    def __init__(self, user: Any, settings: SqlSettings | None = None) -> None:
        self.user = user
        self.settings = settings or SqlSettings()
        self.db: Database | None = None
        self.full_text = ""
        self.hot_ids: list[str] = []

    @property
    def dialect(self) -> str:
        return "" if self.db is None else ("postgres" if self.db.postgres else "sqlite")

    def open(self) -> bool:
        """Connect (the `SQL connect` stat); whether a connection is open."""
        if self.db is not None:
            return True

        def go() -> Database:
            url = database_url_for(self.user.environment)
            db = Database(connect(url, busy_timeout=self.settings.sqlite_busy_timeout), is_postgres(url))
            self.full_text = db.full_text_kind()
            return db

        self.db = timed_query(self.user.request_event, "connect", go, context=self.user.context())
        return self.db is not None

    def close(self) -> None:
        if self.db is not None:
            try:
                self.db.conn.close()
            except Exception as exc:  # closing a broken connection may fail; nothing is lost
                logger.debug("closing the database connection failed: %s", exc)
            self.db = None

    def run(self, name: str, fn: Callable[[Database], T]) -> T | None:
        """Run `fn(database)` as the `SQL` stat `name`; drop a connection that broke, to reopen it."""
        if not self.open():
            return None
        db = self.db
        assert db is not None

        def go() -> T:
            try:
                return fn(db)
            except Exception as exc:
                self.user.last_failure = f"{type(exc).__name__}: {exc}"
                if db.postgres:
                    if getattr(db.conn, "closed", False) or getattr(db.conn, "broken", False):
                        self.close()
                elif db.conn.in_transaction:
                    db.conn.rollback()
                raise

        return timed_query(self.user.request_event, name, go, context=self.user.context())


def session(user: Any) -> SqlSession:
    """The user's database session (`workspace.db`), made on first use with the user's settings."""
    current = user.workspace.db
    if not isinstance(current, SqlSession):
        settings = SqlSettings(
            **{name: getattr(user, name) for name in SqlSettings.__dataclass_fields__ if hasattr(user, name)}
        )
        current = user.workspace.db = SqlSession(user, settings)
    return current


def _ran(user: Any, result: T | None, name: str) -> T:
    if result is None:
        raise StepFailed(f"SQL {name}: {user.last_failure or 'failed'}")
    return result


def query(user: Any, name: str, statement: str, params: Sequence[Any] = ()) -> Rows:
    """Run one statement of your own (written with `?` placeholders) as the `SQL` stat `name`; its rows."""
    rows = session(user).run(name, lambda db: db.rows(statement, params))
    return _ran(user, rows, name)


def learn_organisation(user: Any, seed_evidence: int = 0) -> str:
    """The user's organisation (`GET /api/users/me`), kept as `workspace.organization_id`, and, once,
    `seed_evidence` rows of its own (`POST /api/evidence/bulk`) so tenant-scoped queries find some."""
    if user.workspace.organization_id is None:
        me = required(user, user.call("GET", "users.me", fields=("organization_id",)), "who am I")
        user.workspace.organization_id = str(me["organization_id"])
        if seed_evidence > 0:
            attempt(evidence.bulk_create, user, seed_evidence)
    return str(user.workspace.organization_id)


def pick_hot_rows(user: Any) -> list[str]:
    """The few oldest evidence rows that every such user updates (kept in the session)."""
    sql = session(user)
    if not sql.hot_ids:
        rows = sql.run(
            "hot rows (pick)",
            lambda db: db.rows("SELECT id FROM evidence ORDER BY row_id LIMIT ?", (sql.settings.hot_rows,)),
        )
        sql.hot_ids = [str(r[0]) for r in rows or ()]
    return sql.hot_ids


def _own_rows(rows: Rows, what: str) -> Rows:
    if not rows:
        raise QueryCheckError(
            f"{what}: no rows for the organisation's own evidence (is --db-url the backend's database?)"
        )
    return rows


def evidence_by_framework(user: Any) -> Rows:
    """The evidence list filtered by framework and status, joined to owners and mappings."""
    organization_id = learn_organisation(user)
    framework = user.rng.choice(FRAMEWORKS)
    statement = """
        SELECT e.id, e.title, e.status, e.quality_score, ef.framework, u.full_name
        FROM evidence e
        JOIN evidence_frameworks ef ON ef.evidence_id = e.id
        LEFT JOIN users u ON u.id = e.owner_id
        WHERE e.organization_id = ? AND ef.framework = ? AND e.status <> 'expired'
        ORDER BY e.updated_at DESC
        LIMIT 50"""
    name = "evidence by framework (join)"
    return _ran(
        user, session(user).run(name, lambda db: db.rows(statement, (organization_id, framework))), name
    )


def stats_by_status(user: Any) -> Rows:
    """The evidence statistics page: counts and mean quality by status and type."""
    organization_id = learn_organisation(user)
    statement = """
        SELECT status, evidence_type, COUNT(*), AVG(quality_score)
        FROM evidence
        WHERE organization_id = ?
        GROUP BY status, evidence_type
        ORDER BY status, evidence_type"""
    name = "evidence stats by status and type (aggregate)"
    rows = session(user).run(name, lambda db: _own_rows(db.rows(statement, (organization_id,)), "stats"))
    return _ran(user, rows, name)


def framework_coverage(user: Any) -> Rows:
    """The compliance dashboard: per framework, how much evidence and how good, across all tenants."""
    statement = """
        SELECT ef.framework, COUNT(DISTINCT e.organization_id), COUNT(*),
               AVG(e.quality_score), MAX(e.updated_at)
        FROM evidence_frameworks ef
        JOIN evidence e ON e.id = ef.evidence_id
        GROUP BY ef.framework
        ORDER BY COUNT(*) DESC"""
    name = "framework coverage, all tenants (join + aggregate)"
    return _ran(user, session(user).run(name, lambda db: db.rows(statement)), name)


def full_text_search(user: Any) -> Rows:
    """Ranked full-text search of the organisation's evidence, as `GET /api/evidence/search` does: FTS5
    or tsvector, whichever the backend built, else LIKE."""
    organization_id = learn_organisation(user)
    sql = session(user)
    if not sql.open():
        raise StepFailed(f"SQL connect: {user.last_failure}")
    term = user.rng.choice(SEARCH_TERMS)
    if sql.full_text == "fts5":
        # CROSS JOIN keeps the match as the outer loop; with a plain JOIN SQLite's planner may
        # re-run the full-text match once per evidence row of the organisation.
        statement = """
            SELECT e.id, e.title, bm25(evidence_fts) AS rank
            FROM evidence_fts CROSS JOIN evidence e ON e.row_id = evidence_fts.rowid
            WHERE evidence_fts MATCH ? AND e.organization_id = ?
            ORDER BY rank
            LIMIT 20"""
        params: tuple[Any, ...] = (term, organization_id)
        name = "evidence full-text search (fts5)"
    elif sql.full_text == "tsvector":
        statement = """
            SELECT e.id, e.title, ts_rank(e.search_vector, query) AS rank
            FROM evidence e, websearch_to_tsquery('english', ?) query
            WHERE e.search_vector @@ query AND e.organization_id = ?
            ORDER BY rank DESC
            LIMIT 20"""
        params = (term, organization_id)
        name = "evidence full-text search (tsvector)"
    else:
        statement = """
            SELECT id, title FROM evidence
            WHERE organization_id = ? AND (title LIKE ? OR description LIKE ?)
            LIMIT 20"""
        params = (organization_id, f"%{term}%", f"%{term}%")
        name = "evidence text search (like)"
    return _ran(user, sql.run(name, lambda db: db.rows(statement, params)), name)


def update_hot_row(user: Any) -> None:
    """Read-modify-write of one of the few rows every such user updates, under a row lock."""
    hot_ids = pick_hot_rows(user)
    if not hot_ids:
        raise StepFailed("SQL hot rows: none picked")
    evidence_id = user.rng.choice(hot_ids)
    step = user.rng.choice((-0.01, 0.01))
    note = f"db-stress review {datetime.now(UTC).isoformat(timespec='seconds')}"

    def update(db: Database) -> int:
        lock = " FOR UPDATE" if db.postgres else ""  # SQLite: BEGIN IMMEDIATE takes the write lock
        with db.transaction(immediate=True):
            row = db.execute(
                f"SELECT quality_score FROM evidence WHERE id = ?{lock}", (evidence_id,)
            ).fetchone()
            if row is None:
                return 0
            # The backend keeps updated_at as ISO text on SQLite, as a timestamp on PostgreSQL.
            now = datetime.now(UTC)
            stamp: Any = now if db.postgres else now.isoformat(timespec="microseconds")
            db.execute(
                "UPDATE evidence SET quality_score = ?, notes = ?, updated_at = ? WHERE id = ?",
                (_nudge(row[0], step), note, stamp, evidence_id),
            )
            return 1

    name = "hot evidence update (row lock)"
    if _ran(user, session(user).run(name, update), name) == 0:
        session(user).hot_ids = []  # deleted meanwhile: pick the hot rows again next time


def large_result_scan(user: Any) -> int:
    """An export-sized read of evidence across tenants, `chunk_size` rows at a time; the rows read."""
    sql = session(user)
    statement = """
        SELECT id, organization_id, title, description, evidence_type, status, quality_score,
               framework_mappings, tags, created_at
        FROM evidence
        ORDER BY row_id
        LIMIT ?"""
    name = f"evidence scan in chunks of {sql.settings.chunk_size} (fetchmany)"
    scanned = sql.run(name, lambda db: db.scan(statement, (sql.settings.scan_rows,), sql.settings.chunk_size))
    return _ran(user, scanned, name)


def _nudge(score: float | None, step: float) -> float:
    value = 0.5 if score is None else float(score)
    return round(min(1.0, max(0.0, value + step)), 3)
