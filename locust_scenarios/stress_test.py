"""StressTestUser: no think time, many routes, bulk writes, large and deep pages, contended updates."""

from __future__ import annotations

from typing import Any

from locust import constant, tag, task

from locust_scenarios import ApiUser, dashboards, evidence


class StressTestUser(ApiUser):
    """An integration or a script hammering the API: it never waits between requests.

    Rapid reads spread across the dashboard, profile, evidence list and stats, compliance status and
    frameworks (weight 6: most automated traffic reads), single evidence creation (3), bulk creates of
    `bulk_size` items at `POST /api/evidence/bulk` and bulk status updates at
    `POST /api/evidence/bulk-update` (1 each: heavy), the largest page the API allows (2), a jump deep
    into the evidence list (2) and `concurrent_writers` simultaneous `PATCH /api/evidence/[id]` of the
    same record (1). With the backend's rate limiter on, its 429 answers are counted as
    `<name> [429]`, apart from errors.
    """

    wait_time = constant(0)

    bulk_size: int = 50
    """Items per bulk create (the contract allows up to 1000)."""

    concurrent_writers: int = 5
    """Simultaneous updates of one record in `contended_updates`."""

    remembered_evidence = 500

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.total_pages = 1

    @tag("read")
    @task(6)
    def rapid_read(self) -> None:
        dashboards.any_page(self)

    @tag("write")
    @task(3)
    def create_evidence(self) -> None:
        evidence.create(self)

    @tag("write", "bulk")
    @task(1)
    def bulk_create(self) -> None:
        evidence.bulk_create(self, self.bulk_size)

    @tag("write", "bulk")
    @task(1)
    def bulk_update(self) -> None:
        known = self.workspace.evidence_ids
        if not known:
            evidence.bulk_create(self, self.bulk_size)
            return
        ids = self.rng.sample(known, k=min(len(known), self.bulk_size))
        evidence.bulk_update(self, ids, reason="stress test")

    @tag("read", "db")
    @task(2)
    def large_page(self) -> None:
        page = evidence.largest_page(self)
        # deep_page walks pages of 20: remember how many of those there are.
        self.total_pages = max(1, int(page["total_pages"]) * self.api.MAX_PAGE_SIZE // 20)

    @tag("read", "db")
    @task(2)
    def deep_page(self) -> None:
        deep = self.rng.randint(max(1, self.total_pages // 2), self.total_pages)
        page = evidence.list_page(self, page=deep)
        self.total_pages = max(1, int(page["total_pages"]))

    @tag("write", "db")
    @task(1)
    def contended_updates(self) -> None:
        if not self.workspace.evidence_ids:
            evidence.create(self)
            return
        evidence.contended_update(self, self.concurrent_writers)
