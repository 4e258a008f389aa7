"""DatabaseStressUser: the backend's database under the queries its heaviest pages make, sent directly."""

from __future__ import annotations

from locust import between, tag, task

from locust_scenarios import ApiUser, sql


class DatabaseStressUser(ApiUser):
    """A reporting and review workload sent straight to the backend's database (SQLite or PostgreSQL).

    On start it logs in over HTTP, learns its organisation (`GET /api/users/me`) and creates evidence
    of its own (`POST /api/evidence/bulk`) so every tenant-scoped query has rows to find, then opens
    its own database connection (`--db-url`, or the embedded backend's database). Its tasks are the
    queries behind the service's busiest pages, weighted as those pages are used: evidence lists joined
    to frameworks and owners (4), dashboard aggregations by status, type and framework (2 and 1),
    ranked full-text search over FTS5 or tsvector, whichever the backend built (3), read-modify-write
    updates of a few hot rows that every such user contends for, under a row lock (2), and an
    export-sized scan read in chunks with `fetchmany` (1). Its only writes are the `quality_score` and
    `notes` (and `updated_at`) of the hot rows, so the backend's data stays coherent. Every query is a
    `SQL` stat timed with `perf_counter`; a locked database, a lost connection or a wrong answer is a
    failure.
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

    def on_start(self) -> None:
        super().on_start()
        self.set_tags("db", "setup")
        sql.learn_organisation(self, seed_evidence=self.seed_evidence)
        sql.pick_hot_rows(self)

    @tag("db", "read")
    @task(4)
    def evidence_by_framework(self) -> None:
        sql.evidence_by_framework(self)

    @tag("db", "read")
    @task(2)
    def evidence_stats(self) -> None:
        sql.stats_by_status(self)

    @tag("db", "read")
    @task(1)
    def framework_coverage(self) -> None:
        sql.framework_coverage(self)

    @tag("db", "search")
    @task(3)
    def full_text_search(self) -> None:
        sql.full_text_search(self)

    @tag("db", "write")
    @task(2)
    def update_hot_row(self) -> None:
        sql.update_hot_row(self)

    @tag("db", "read")
    @task(1)
    def large_result_scan(self) -> None:
        sql.large_result_scan(self)
