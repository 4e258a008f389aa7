"""StressTestUser: no think time, many routes, bulk writes, large and deep pages, contended updates."""

from __future__ import annotations

from typing import Any

import gevent
from locust import constant, tag, task

from compliance_loadtest.api import EVIDENCE_STATUSES
from locust_scenarios import ApiUser

READ_ROUTES = (
    "users.dashboard",
    "users.me",
    "evidence.list",
    "evidence.stats",
    "compliance.status",
    "frameworks.list",
)


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

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.evidence_ids: list[str] = []
        self.total_pages = 1

    @tag("read")
    @task(6)
    def rapid_read(self) -> None:
        self.call("GET", self.rng.choice(READ_ROUTES))

    @tag("write")
    @task(3)
    def create_evidence(self) -> None:
        created = self.call("POST", "evidence.create", json=self.api.evidence_payload(self.fake, self.rng))
        if created is not None:
            self._remember([str(created["id"])])

    @tag("write", "bulk")
    @task(1)
    def bulk_create(self) -> None:
        count = self.bulk_size
        body = self.call(
            "POST",
            "evidence.bulk_create",
            json=self.api.bulk_evidence_payload(self.fake, self.rng, count),
            check=lambda b: (
                None if b["created_count"] == count else f"created {b['created_count']} of {count}"
            ),
        )
        if body is not None:
            self._remember([str(i) for i in body["ids"]])

    @tag("write", "bulk")
    @task(1)
    def bulk_update(self) -> None:
        if not self.evidence_ids:
            self.bulk_create()
            return
        ids = self.rng.sample(self.evidence_ids, k=min(len(self.evidence_ids), self.bulk_size))
        status = self.rng.choice(EVIDENCE_STATUSES)
        self.call(
            "POST",
            "evidence.bulk_update",
            json=self.api.bulk_update_payload(ids, status, "stress test"),
            check=lambda b: (
                None if b["updated_count"] == len(ids) else f"updated {b['updated_count']} of {len(ids)}"
            ),
        )

    @tag("read", "db")
    @task(2)
    def large_page(self) -> None:
        params = self.api.evidence_list_params(self.rng, page_size=self.api.MAX_PAGE_SIZE)
        page = self.call("GET", "evidence.list", params=params)
        if page is not None:
            # deep_page walks pages of 20: remember how many of those there are.
            self.total_pages = max(1, int(page["total_pages"]) * self.api.MAX_PAGE_SIZE // 20)

    @tag("read", "db")
    @task(2)
    def deep_page(self) -> None:
        deep = self.rng.randint(max(1, self.total_pages // 2), self.total_pages)
        page = self.call("GET", "evidence.list", params=self.api.evidence_list_params(self.rng, page=deep))
        if page is not None:
            self.total_pages = max(1, int(page["total_pages"]))

    @tag("write", "db")
    @task(1)
    def contended_updates(self) -> None:
        if not self.evidence_ids:
            self.create_evidence()
            return
        evidence_id = self.rng.choice(self.evidence_ids)
        payloads = [
            self.api.evidence_update_payload(self.fake, self.rng) for _ in range(self.concurrent_writers)
        ]
        writers = [
            gevent.spawn(self.call, "PATCH", "evidence.update", ids={"id": evidence_id}, json=p)
            for p in payloads
        ]
        gevent.joinall(writers)

    def _remember(self, ids: list[str]) -> None:
        self.evidence_ids.extend(ids)
        del self.evidence_ids[:-500]
