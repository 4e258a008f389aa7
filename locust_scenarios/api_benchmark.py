"""ApiBenchmarkUser: the seed suite's API microbenchmarks, as rounds of one Locust task."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from gevent.pool import Pool
from locust import task
from locust.event import EventHook

from locust_scenarios import (
    ApiSession,
    ApiUser,
    BenchmarkUserMixin,
    RoundFailed,
    assistant,
    attempt,
    dashboards,
    evidence,
    install_guard,
    journeys,
    onboarding,
    rss_growth,
    search,
    target_pid,
)

API_BENCHMARKS = (
    "api.authentication",
    "api.evidence_creation",
    "api.evidence_search",
    "api.dashboard",
    "api.ai_chat",
    "api.concurrent_requests",
    "api.bulk_operation",
    "api.large_dataset",
    "api.concurrent_memory",
    "api.complex_query",
    "api.aggregation",
    "api.complete_onboarding",
    "api.daily_workflow",
    "api.peak_usage",
)

# What the seed's concurrency benchmark counted as a slow answer (seconds).
SLOW_REQUEST_S = 2.0


class ApiBenchmarkUser(BenchmarkUserMixin, ApiUser):
    """Runs every API benchmark of the seed suite once per round, then idles until the run ends.

    Each benchmark (authentication, evidence creation and search, dashboard, AI chat with its time to
    first token, 20 concurrent profile reads, bulk update, large dataset, concurrent memory, complex
    query, aggregation, complete onboarding, daily workflow, peak usage) runs `warmup_iterations`
    unrecorded rounds and `benchmark_rounds` measured ones from `--benchmark-config`; each measured
    round is one `BENCH` request named `api.<benchmark>` (group `bench-api`), and the requests of
    measured rounds appear in the stats as usual, under the same names and meanings as in the other
    users (the steps are the same). Set-up data (evidence to search, list and aggregate) is created as
    quietly as the warm-up. Concurrent parts run as gevent pools inside the task. It has one task, so
    no weights; it never joins a mixed run by itself: name it (`locust -f locust_scenarios
    ApiBenchmarkUser`), pick it with `--class-picker`, or give it in a `--load-profile` mix. A user that
    cannot log in fails every benchmark with the reason.
    """

    bench_group = "bench-api"
    concurrency = 25
    """Connections per user: the widest parallel part (20 concurrent profile reads) needs no queueing."""

    def on_start(self) -> None:
        # Warm-up and set-up requests go through a session whose request event nobody listens to.
        self._quiet_client = ApiSession(
            base_url=self.host,
            request_event=EventHook(),
            user=self,
            network_timeout=self.network_timeout,
            connection_timeout=self.connection_timeout,
            max_redirects=self.max_redirects,
            insecure=self.insecure,
            concurrency=self.concurrency,
            headers=self.default_headers,
        )
        install_guard(self._quiet_client, self.host or "")
        self._target_pid = target_pid(self.environment, self.host)
        super().on_start()

    @contextmanager
    def quiet(self) -> Iterator[None]:
        loud = self.client
        self.client = self._quiet_client
        try:
            yield
        finally:
            self.client = loud

    @task
    def run_benchmarks(self) -> None:
        if self.finished:
            return
        if not self.access_token:
            self.fail_all(API_BENCHMARKS, f"set-up failed: could not log in ({self.last_failure})")
            self.finish_benchmarks()
            return
        try:
            with self.section(*API_BENCHMARKS), self.quiet():
                evidence.bulk_create(self, 50)
            self.bench("api.authentication", self._authentication)
            self.bench("api.evidence_creation", lambda: evidence.create(self))
            self.bench("api.evidence_search", self._evidence_search)
            self.bench("api.dashboard", lambda: dashboards.user_dashboard(self))
            self.bench("api.ai_chat", self._ai_chat)
            self.bench("api.concurrent_requests", self._concurrent_requests, extra_info={"parallel": 20})
            self.bench("api.bulk_operation", self._bulk_operation)
            memory = {"target_pid": self._target_pid, "rss_of": "target"}
            self.bench("api.large_dataset", self._large_dataset, extra_info=memory)
            self.bench(
                "api.concurrent_memory", self._concurrent_memory, extra_info={**memory, "parallel": 10}
            )
            self.bench("api.complex_query", self._complex_query)
            self.bench("api.aggregation", self._aggregation)
            self.bench("api.complete_onboarding", self._complete_onboarding)
            self.bench("api.daily_workflow", lambda: journeys.daily_workflow(self))
            self.bench("api.peak_usage", self._peak_usage, extra_info={"parallel": 20, "actions_each": 10})
        except Exception:
            # A bug must not make the user repeat its benchmarks until --run-time: finish, and report it.
            self.finish_benchmarks()
            raise
        # Not in `finally`: a user killed because the run stops has not finished its benchmarks.
        self.finish_benchmarks()

    # --- the benchmarks, as in the seed suite ---------------------------------------------------

    @staticmethod
    def _parallel(size: int, job: Callable[[int], bool]) -> int:
        """Run `job(0..size-1)` at once on a gevent pool; the number of jobs that failed."""
        return sum(1 for ok in Pool(size).map(job, range(size)) if not ok)

    def _authentication(self) -> None:
        # Registered once (on start); the benchmark is the login.
        if not self.log_in_again():
            raise RoundFailed(f"login with the registered account: {self.last_failure}")

    def _evidence_search(self) -> None:
        search.search(self, "security", evidence_type="document")

    def _ai_chat(self) -> Mapping[str, Any]:
        reply = assistant.ask_sse(self)
        return {"ttft_ms": reply.ttft_ms or 0.0, "tokens": reply.tokens}

    def _concurrent_requests(self) -> Mapping[str, Any]:
        times: list[float] = []

        def read_profile(_: int) -> bool:
            start = time.perf_counter()
            ok = attempt(dashboards.profile, self) is not None
            times.append(time.perf_counter() - start)
            return ok

        failed = self._parallel(20, read_profile)
        if failed:
            raise RoundFailed(f"20 concurrent GET profile: expected all to succeed, {failed} failed")
        return {
            "request_mean_s": sum(times) / len(times),
            "request_max_s": max(times),
            "requests_over_2s": sum(1 for t in times if t > SLOW_REQUEST_S),
        }

    def _bulk_operation(self) -> None:
        evidence.bulk_update(self, evidence.bulk_create(self, 10), "reviewed", "benchmark review")

    def _large_dataset(self) -> Mapping[str, Any]:
        measures: dict[str, Any] = {}
        with rss_growth(self._target_pid, measures):
            evidence.bulk_create(self, 100)
            start = time.perf_counter()
            page = evidence.list_page(self, page_size=100)
            measures["retrieval_s"] = time.perf_counter() - start
        if len(page["results"]) != 100:
            raise RoundFailed(
                f"large dataset: expected 100 results on a page of 100, got {len(page['results'])}"
            )
        return measures

    def _concurrent_memory(self) -> Mapping[str, Any]:
        def create_and_list(_: int) -> bool:
            ok = True
            for _ in range(10):
                ok &= attempt(evidence.create, self) is not None
                ok &= attempt(evidence.list_page, self) is not None
            return ok

        measures: dict[str, Any] = {}
        with rss_growth(self._target_pid, measures):
            failed = self._parallel(10, create_and_list)
        if failed:
            raise RoundFailed(
                f"10 x 10 create+list: expected all to succeed, {failed} of 10 workers saw a failure"
            )
        return measures

    def _complex_query(self) -> None:
        filters = {"evidence_type": "document", "status": "collected", "framework": "ISO27001"}
        search.search(self, "security", **filters, sort_by="relevance")

    def _aggregation(self) -> None:
        total = evidence.stats(self)["total_evidence_items"]
        if not isinstance(total, int) or total < 50:
            raise RoundFailed(f"evidence stats: expected at least the 50 items created, got {total!r}")

    def _complete_onboarding(self) -> None:
        with self.as_new_account() as signed_up:
            if not signed_up:
                raise RoundFailed(f"register and log in a new account: {self.last_failure}")
            dashboards.profile(self)
            onboarding.onboard(self)
            dashboards.user_dashboard(self)

    def _peak_usage(self) -> None:
        actions: tuple[Callable[[], Any], ...] = (
            lambda: dashboards.user_dashboard(self),
            lambda: evidence.list_page(self, filtered=True),
            lambda: search.search(self),
            lambda: evidence.create(self),
            lambda: evidence.stats(self),
            lambda: dashboards.compliance_status(self),
        )
        failures = [0]

        def simulated_user(n: int) -> bool:
            for i in range(10):
                if attempt(actions[(n + i) % len(actions)]) is None:
                    failures[0] += 1
            return True

        self._parallel(20, simulated_user)
        if failures[0]:
            raise RoundFailed(f"20 users x 10 actions: expected all 200 to succeed, {failures[0]} failed")
