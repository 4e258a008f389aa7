"""DatabaseStressUser: the backend's database under the queries its heaviest pages make, sent directly."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from locust import between, tag, task

from compliance_loadtest.api import FRAMEWORKS, SEARCH_TERMS
from compliance_loadtest.db import (
    Connection,
    connect,
    database_url_for,
    is_postgres,
    timed_query,
)
from locust_scenarios import ApiUser

logger = logging.getLogger(__name__)

T = TypeVar("T")
Rows = list[tuple[Any, ...]]


class QueryCheckError(Exception):
    """A query ran but its answer is wrong (e.g. the organisation's own rows are missing)."""


class DatabaseStressUser(ApiUser):
    """A reporting and review workload sent straight to the backend's database (SQLite or PostgreSQL).

    On start it logs in over HTTP, learns its organisation (`GET /api/users/me`) and creates evidence
    of its own (`POST /api/evidence/bulk`) so every tenant-scoped query has rows to find, then opens
    its own database connection (`--db-url`, or the embedded backend's database). Its tasks are the
    queries behind the service's busiest pages, weighted as those pages are used: evidence lists joined
    to frameworks and owners (4), dashboard aggregations by status, type and framework (3), ranked
    full-text search over FTS5 or tsvector, whichever the backend built (3), read-modify-write updates
    of a few hot rows that every such user contends for, under a row lock (2), and an export-sized scan
    read in chunks with `fetchmany` (1). Its only writes are the `quality_score` and `notes` (and
    `updated_at`) of the hot rows, so the backend's data stays coherent. Every query is a `SQL` stat
    timed with `perf_counter`; a locked database, a lost connection or a wrong answer is a failure.
    """

    wait_time = between(0.5, 2)

    seed_evidence: int = 30
    """Evidence rows each user creates through the API at start (its own tenant's data)."""

    hot_rows: int = 5
    """How many rows the concurrent updates share: the oldest evidence rows of the database."""

    chunk_size: int = 100
    """Rows per `fetchmany` when reading a large result."""

    scan_rows: int = 2000
    """Most rows read by one large-result scan."""

    sqlite_busy_timeout: float = 1.0
    """Seconds SQLite waits for a lock before "database is locked". The wait happens inside SQLite's C
    code and stops every user of the process meanwhile, so it is kept short; a longer lock is a failure."""

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.db: Connection | None = None
        self.dialect = ""
        self.full_text = ""
        self.organization_id: str | None = None
        self.hot_ids: list[str] = []

    def on_start(self) -> None:
        super().on_start()
        self._task_tags = "db,setup"
        self.prepare()

    def on_stop(self) -> None:
        self.close()

    # --- set-up -------------------------------------------------------------------------------

    def prepare(self) -> bool:
        """Organisation, own evidence, connection, hot rows: whatever is still missing."""
        if self.organization_id is None:
            me = self.call("GET", "users.me", fields=("organization_id",))
            if me is None:
                return False
            self.organization_id = str(me["organization_id"])
            if self.seed_evidence > 0:
                payload = self.api.bulk_evidence_payload(self.fake, self.rng, self.seed_evidence)
                self.call("POST", "evidence.bulk_create", json=payload)
        if self.db is None and not self.open():
            return False
        if not self.hot_ids:
            rows = self.sql(
                "hot rows (pick)",
                lambda db: self._fetch(
                    db, "SELECT id FROM evidence ORDER BY row_id LIMIT ?", (self.hot_rows,)
                ),
            )
            self.hot_ids = [str(r[0]) for r in rows or ()]
        return self.db is not None

    def tenant_ready(self) -> bool:
        """Whether the organisation is known (set-up is retried until it is; its failures are recorded)."""
        return self.organization_id is not None or (self.prepare() and self.organization_id is not None)

    def open(self) -> bool:
        def go() -> Connection:
            url = database_url_for(self.environment)
            db = connect(url, busy_timeout=self.sqlite_busy_timeout)
            self.dialect = "postgres" if is_postgres(url) else "sqlite"
            self.full_text = self._detect_full_text(db)
            return db

        self.db = timed_query(self.environment, "connect", go, context=self.context())
        return self.db is not None

    def _detect_full_text(self, db: Connection) -> str:
        if self.dialect == "sqlite":
            found = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'evidence_fts'").fetchone()
            return "fts5" if found else ""
        found = db.execute(
            "SELECT 1 FROM information_schema.columns WHERE table_name = 'evidence' "
            "AND column_name = 'search_vector' AND table_schema = current_schema()"
        ).fetchone()
        return "tsvector" if found else ""

    def close(self) -> None:
        if self.db is not None:
            try:
                self.db.close()
            except Exception as exc:  # closing a broken connection may fail; nothing is lost
                logger.debug("closing the database connection failed: %s", exc)
            self.db = None

    # --- running one query --------------------------------------------------------------------

    def sql(self, name: str, fn: Callable[[Connection], T]) -> T | None:
        """Run `fn(connection)` as the `SQL` stat `name`; drop a connection that broke, to reopen it."""
        if self.db is None and not self.open():
            return None
        db = self.db

        def run() -> T:
            try:
                return fn(db)
            except Exception:
                self._after_error(db)
                raise

        return timed_query(self.environment, name, run, context=self.context())

    def _after_error(self, db: Connection) -> None:
        if self.dialect == "sqlite":
            if db.in_transaction:
                db.rollback()
        elif getattr(db, "closed", False) or getattr(db, "broken", False):
            self.close()

    def _q(self, statement: str) -> str:
        """`?` placeholders for SQLite, `%s` for psycopg."""
        return statement if self.dialect == "sqlite" else statement.replace("?", "%s")

    def _fetch(self, db: Connection, statement: str, params: Sequence[Any] = ()) -> Rows:
        return list(db.execute(self._q(statement), tuple(params)).fetchall())

    def _own_rows_expected(self, rows: Rows, what: str) -> Rows:
        if not rows:
            raise QueryCheckError(
                f"{what}: no rows for the organisation's own evidence (is --db-url the backend's database?)"
            )
        return rows

    # --- tasks --------------------------------------------------------------------------------

    @tag("db", "read")
    @task(4)
    def evidence_by_framework(self) -> None:
        """The evidence list filtered by framework and status, joined to owners and mappings."""
        if not self.tenant_ready():
            return
        framework = self.rng.choice(FRAMEWORKS)
        statement = """
            SELECT e.id, e.title, e.status, e.quality_score, ef.framework, u.full_name
            FROM evidence e
            JOIN evidence_frameworks ef ON ef.evidence_id = e.id
            LEFT JOIN users u ON u.id = e.owner_id
            WHERE e.organization_id = ? AND ef.framework = ? AND e.status <> 'expired'
            ORDER BY e.updated_at DESC
            LIMIT 50"""
        self.sql(
            "evidence by framework (join)",
            lambda db: self._fetch(db, statement, (self.organization_id, framework)),
        )

    @tag("db", "read")
    @task(2)
    def evidence_stats(self) -> None:
        """The evidence statistics page: counts and mean quality by status and type."""
        if not self.tenant_ready():
            return
        statement = """
            SELECT status, evidence_type, COUNT(*), AVG(quality_score)
            FROM evidence
            WHERE organization_id = ?
            GROUP BY status, evidence_type
            ORDER BY status, evidence_type"""
        self.sql(
            "evidence stats by status and type (aggregate)",
            lambda db: self._own_rows_expected(self._fetch(db, statement, (self.organization_id,)), "stats"),
        )

    @tag("db", "read")
    @task(1)
    def framework_coverage(self) -> None:
        """The compliance dashboard: per framework, how much evidence and how good, across all tenants."""
        statement = """
            SELECT ef.framework, COUNT(DISTINCT e.organization_id), COUNT(*),
                   AVG(e.quality_score), MAX(e.updated_at)
            FROM evidence_frameworks ef
            JOIN evidence e ON e.id = ef.evidence_id
            GROUP BY ef.framework
            ORDER BY COUNT(*) DESC"""
        self.sql("framework coverage, all tenants (join + aggregate)", lambda db: self._fetch(db, statement))

    @tag("db", "search")
    @task(3)
    def full_text_search(self) -> None:
        """Ranked full-text search of the organisation's evidence, as `GET /api/evidence/search` does."""
        if not self.tenant_ready():
            return
        term = self.rng.choice(SEARCH_TERMS)
        if self.full_text == "fts5":
            # CROSS JOIN keeps the match as the outer loop; with a plain JOIN SQLite's planner may
            # re-run the full-text match once per evidence row of the organisation.
            statement = """
                SELECT e.id, e.title, bm25(evidence_fts) AS rank
                FROM evidence_fts CROSS JOIN evidence e ON e.row_id = evidence_fts.rowid
                WHERE evidence_fts MATCH ? AND e.organization_id = ?
                ORDER BY rank
                LIMIT 20"""
            params: tuple[Any, ...] = (term, self.organization_id)
            name = "evidence full-text search (fts5)"
        elif self.full_text == "tsvector":
            statement = """
                SELECT e.id, e.title, ts_rank(e.search_vector, query) AS rank
                FROM evidence e, websearch_to_tsquery('english', ?) query
                WHERE e.search_vector @@ query AND e.organization_id = ?
                ORDER BY rank DESC
                LIMIT 20"""
            params = (term, self.organization_id)
            name = "evidence full-text search (tsvector)"
        else:
            statement = """
                SELECT id, title FROM evidence
                WHERE organization_id = ? AND (title LIKE ? OR description LIKE ?)
                LIMIT 20"""
            params = (self.organization_id, f"%{term}%", f"%{term}%")
            name = "evidence text search (like)"
        self.sql(name, lambda db: self._fetch(db, statement, params))

    @tag("db", "write")
    @task(2)
    def update_hot_row(self) -> None:
        """Read-modify-write of one of the few rows every such user updates, under a row lock."""
        if not self.hot_ids and not self.prepare():
            return
        if not self.hot_ids:
            return
        evidence_id = self.rng.choice(self.hot_ids)
        step = self.rng.choice((-0.01, 0.01))
        note = f"db-stress review {datetime.now(UTC).isoformat(timespec='seconds')}"

        def update(db: Connection) -> int:
            if self.dialect == "sqlite":
                return self._update_sqlite(db, evidence_id, step, note)
            with db.transaction():
                row = db.execute(
                    "SELECT quality_score FROM evidence WHERE id = %s FOR UPDATE", (evidence_id,)
                ).fetchone()
                if row is None:
                    return 0
                db.execute(
                    "UPDATE evidence SET quality_score = %s, notes = %s, updated_at = now() WHERE id = %s",
                    (_nudge(row[0], step), note, evidence_id),
                )
                return 1

        updated = self.sql("hot evidence update (row lock)", update)
        if updated == 0:
            self.hot_ids = []  # deleted meanwhile: pick the hot rows again next time

    def _update_sqlite(self, db: Connection, evidence_id: str, step: float, note: str) -> int:
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute("SELECT quality_score FROM evidence WHERE id = ?", (evidence_id,)).fetchone()
            if row is not None:
                db.execute(
                    "UPDATE evidence SET quality_score = ?, notes = ?, updated_at = ? WHERE id = ?",
                    (
                        _nudge(row[0], step),
                        note,
                        datetime.now(UTC).isoformat(timespec="microseconds"),
                        evidence_id,
                    ),
                )
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.rollback()
            raise
        return 0 if row is None else 1

    @tag("db", "read")
    @task(1)
    def large_result_scan(self) -> None:
        """An export-sized read of evidence across tenants, `chunk_size` rows at a time."""
        statement = """
            SELECT id, organization_id, title, description, evidence_type, status, quality_score,
                   framework_mappings, tags, created_at
            FROM evidence
            ORDER BY row_id
            LIMIT ?"""

        def scan(db: Connection) -> int:
            if self.dialect == "sqlite":
                cursor = db.execute(statement, (self.scan_rows,))
                return _drain(cursor, self.chunk_size)
            # A server-side cursor, so the server sends the rows in chunks too, not all at once.
            with db.transaction(), db.cursor(name="db_stress_scan") as cursor:
                cursor.execute(self._q(statement), (self.scan_rows,))
                return _drain(cursor, self.chunk_size)

        self.sql(f"evidence scan in chunks of {self.chunk_size} (fetchmany)", scan)


def _nudge(score: float | None, step: float) -> float:
    value = 0.5 if score is None else float(score)
    return round(min(1.0, max(0.0, value + step)), 3)


def _drain(cursor: Any, size: int) -> int:
    count = 0
    while rows := cursor.fetchmany(size):
        count += len(rows)
    return count
