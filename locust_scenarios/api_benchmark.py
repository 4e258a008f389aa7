"""ApiBenchmarkUser: the seed suite's API microbenchmarks, as rounds of one Locust task."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from gevent.pool import Pool
from locust import task
from locust.contrib.fasthttp import FastHttpSession
from locust.event import EventHook
from locust.exception import StopUser

from compliance_loadtest.benchmark import BenchmarkUserMixin, RoundFailed, rss_growth, target_pid
from compliance_loadtest.plugin.guard import install_guard
from compliance_loadtest.streaming import SseReader, StreamError, TokenStream
from locust_scenarios import ApiUser

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
    round is one `BENCH` request named `api.<benchmark>` (group `bench-api`), and the HTTP requests of
    measured rounds appear in the stats as usual. Set-up data (evidence to search, list and aggregate)
    is created as quietly as the warm-up. Concurrent parts run as gevent pools inside the task. It has
    one task, so no weights; it never joins a mixed run by itself: name it (`locust -f locust_scenarios
    ApiBenchmarkUser`), pick it with `--class-picker`, or give it in a `--load-profile` mix. Locust
    has no "run only when selected" flag and `weight = 0` would drop it even when named, so a listener
    takes it out of runs that do not ask for it (`_bench._leave_out_of_mixes`).
    """

    bench_group = "bench-api"
    concurrency = 25
    """Connections per user: the widest parallel part (20 concurrent profile reads) needs no queueing."""

    def on_start(self) -> None:
        # Warm-up and set-up requests go through a session whose request event nobody listens to.
        self._quiet_client = FastHttpSession(
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
        try:
            super().on_start()
        except StopUser:
            # The target was refused (not loopback): nothing will be measured, so let the run end.
            self.finish_benchmarks()

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
        if self._bench_done:
            return
        if not self.access_token:
            # Could not log in: every benchmark would fail the same way; the login failure is in the stats.
            self.finish_benchmarks()
            return
        try:
            with self.section(*API_BENCHMARKS), self.quiet():
                self._make_evidence(50)
            self.bench("api.authentication", self._authentication)
            self.bench("api.evidence_creation", self._evidence_creation)
            self.bench("api.evidence_search", self._evidence_search)
            self.bench("api.dashboard", self._dashboard)
            self.bench("api.ai_chat", self._ai_chat)
            self.bench("api.concurrent_requests", self._concurrent_requests, extra_info={"parallel": 20})
            self.bench("api.bulk_operation", self._bulk_operation)
            self.bench(
                "api.large_dataset",
                self._large_dataset,
                extra_info={"target_pid": self._target_pid, "rss_of": "target"},
            )
            self.bench(
                "api.concurrent_memory",
                self._concurrent_memory,
                extra_info={"target_pid": self._target_pid, "rss_of": "target", "parallel": 10},
            )
            self.bench("api.complex_query", self._complex_query)
            self.bench("api.aggregation", self._aggregation)
            self.bench("api.complete_onboarding", self._complete_onboarding)
            self.bench("api.daily_workflow", self._daily_workflow)
            self.bench("api.peak_usage", self._peak_usage, extra_info={"parallel": 20, "actions_each": 10})
        except Exception:
            # A bug must not make the user repeat its benchmarks until --run-time: finish, and report it.
            self.finish_benchmarks()
            raise
        # Not in `finally`: a user killed because the run stops has not finished its benchmarks.
        self.finish_benchmarks()

    # --- helpers --------------------------------------------------------------------------------

    def _need(self, body: Any, what: str) -> Any:
        """`body` unless the request failed (its own failure is already in the stats)."""
        if body is None:
            raise RoundFailed(f"{what} failed")
        return body

    def _make_evidence(self, count: int) -> list[str]:
        body = self._need(
            self.call(
                "POST",
                "evidence.bulk_create",
                json=self.api.bulk_evidence_payload(self.fake, self.rng, count),
            ),
            f"creating {count} evidence items (POST {self.api.name('evidence.bulk_create')})",
        )
        ids = [str(i) for i in body.get("ids", ())]
        if len(ids) != count or body.get("created_count") != count:
            raise RoundFailed(
                f"bulk create: expected {count} ids and created_count {count}, "
                f"got {len(ids)} ids and created_count {body.get('created_count')!r}"
            )
        return ids

    @staticmethod
    def _parallel(size: int, job: Callable[[int], bool]) -> int:
        """Run `job(0..size-1)` at once on a gevent pool; the number of jobs that failed."""
        pool = Pool(size)
        outcomes = pool.map(job, range(size))
        return sum(1 for ok in outcomes if not ok)

    # --- the benchmarks, as in the seed suite ---------------------------------------------------

    def _authentication(self) -> None:
        # Registered once (on start); the benchmark is the login.
        if not self.login(self._email, self._password):
            raise RoundFailed("login with the registered account: expected 200 with tokens")

    def _evidence_creation(self) -> None:
        self._need(
            self.call("POST", "evidence.create", json=self.api.evidence_payload(self.fake, self.rng)),
            "POST evidence",
        )

    def _evidence_search(self) -> None:
        params = {"q": "security", "evidence_type": "document", "page": 1, "page_size": 20}
        body = self._need(self.call("GET", "evidence.search", params=params), "evidence search")
        if not isinstance(body.get("results"), list):
            raise RoundFailed("evidence search: expected a list of results")

    def _dashboard(self) -> None:
        self._need(self.call("GET", "users.dashboard"), "GET dashboard")

    def _ai_chat(self) -> Mapping[str, Any]:
        stream = TokenStream("sse")
        name = self.api.name("chat.stream")
        with self.client.request(
            "POST",
            self.api.path("chat.stream"),
            name=name,
            json=self.api.chat_payload(self.fake, self.rng),
            headers=self.auth_headers(),
            stream=True,
            catch_response=True,
            context=self.context(),
        ) as resp:
            if resp.status_code != 200:
                resp.failure(f"POST {name}: expected 200 (an event stream), got {resp.status_code}")
                raise RoundFailed(f"AI chat: expected 200, got {resp.status_code}")
            try:
                for event in SseReader(resp):
                    if event.event == "token":
                        stream.token(event.json())
                    elif event.event == "done":
                        stream.done(event.json())
                if stream.finished is None:
                    raise StreamError("sse: the stream ended without its 'done' event")
            except StreamError as exc:
                resp.failure(f"POST {name}: {exc}")
                raise RoundFailed(f"AI chat: {exc}") from None
            except Exception as exc:  # the connection dropped mid-reply, or timed out
                problem = f"the reply broke off after {stream.tokens} tokens ({type(exc).__name__}: {exc})"
                resp.failure(f"POST {name}: {problem}")
                raise RoundFailed(f"AI chat: {problem}") from None
            resp.success()
        return {"ttft_ms": stream.ttft_ms or 0.0, "tokens": stream.tokens}

    def _concurrent_requests(self) -> Mapping[str, Any]:
        times: list[float] = []

        def get_profile(_: int) -> bool:
            start = time.perf_counter()
            ok = self.call("GET", "users.profile") is not None
            times.append(time.perf_counter() - start)
            return ok

        failed = self._parallel(20, get_profile)
        if failed:
            raise RoundFailed(f"20 concurrent GET profile: expected all to succeed, {failed} failed")
        return {
            "request_mean_s": sum(times) / len(times),
            "request_max_s": max(times),
            "requests_over_2s": sum(1 for t in times if t > SLOW_REQUEST_S),
        }

    def _bulk_operation(self) -> None:
        ids = self._make_evidence(10)
        body = self._need(
            self.call(
                "POST",
                "evidence.bulk_update",
                json=self.api.bulk_update_payload(ids, "reviewed", "benchmark review"),
            ),
            "bulk update",
        )
        if body.get("updated_count") != 10 or body.get("failed_count") != 0:
            raise RoundFailed(
                f"bulk update: expected all 10 updated, got updated_count "
                f"{body.get('updated_count')!r}, failed_count {body.get('failed_count')!r}"
            )

    def _large_dataset(self) -> Mapping[str, Any]:
        measures: dict[str, Any] = {}
        with rss_growth(self._target_pid, measures):
            self._make_evidence(100)
            start = time.perf_counter()
            body = self._need(
                self.call("GET", "evidence.list", params={"page": 1, "page_size": 100}), "list 100 evidence"
            )
            measures["retrieval_s"] = time.perf_counter() - start
        if len(body.get("results", ())) != 100:
            raise RoundFailed(
                f"large dataset: expected 100 results on a page of 100, got {len(body['results'])}"
            )
        return measures

    def _concurrent_memory(self) -> Mapping[str, Any]:
        def create_and_list(_: int) -> bool:
            ok = True
            for _ in range(10):
                ok &= (
                    self.call("POST", "evidence.create", json=self.api.evidence_payload(self.fake, self.rng))
                    is not None
                )
                ok &= self.call("GET", "evidence.list", params={"page": 1, "page_size": 20}) is not None
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
        params = {
            "q": "security",
            "evidence_type": "document",
            "status": "collected",
            "framework": "ISO27001",
            "page": 1,
            "page_size": 20,
            "sort_by": "relevance",
        }
        body = self._need(self.call("GET", "evidence.search", params=params), "multi-filter search")
        if not isinstance(body.get("results"), list):
            raise RoundFailed("multi-filter search: expected a list of results")

    def _aggregation(self) -> None:
        body = self._need(self.call("GET", "evidence.stats"), "evidence stats")
        if not isinstance(body.get("total_evidence_items"), int) or body["total_evidence_items"] < 50:
            raise RoundFailed(
                f"evidence stats: expected at least the 50 items created, got "
                f"{body.get('total_evidence_items')!r}"
            )

    def _complete_onboarding(self) -> None:
        with self._as_new_account():
            profile = self._need(self.call("GET", "users.profile"), "GET profile")
            if not profile.get("id"):
                raise RoundFailed("profile: expected an id")
            business = self._need(
                self.call(
                    "POST", "profiles.create", json=self.api.business_profile_payload(self.fake, self.rng)
                ),
                "create business profile",
            )
            session = self._need(
                self.call(
                    "POST", "assessments.create", json=self.api.assessment_payload(business["id"], self.rng)
                ),
                "start assessment",
            )
            sid = session["session_id"]
            for n in range(1, 4):
                self._need(
                    self.call(
                        "POST",
                        "assessments.respond",
                        ids={"id": sid},
                        json=self.api.assessment_response_payload(self.fake, self.rng, n),
                    ),
                    f"assessment response {n}",
                )
            done = self._need(
                self.call("POST", "assessments.complete", ids={"id": sid}), "complete assessment"
            )
            if done.get("status") != "completed":
                raise RoundFailed(
                    f"complete assessment: expected status 'completed', got {done.get('status')!r}"
                )
            recs = self._need(
                self.call("GET", "frameworks.recommendations", ids={"id": business["id"]}),
                "framework recommendations",
            )
            if not recs:
                raise RoundFailed("framework recommendations: expected a non-empty list")
            self._need(self.call("GET", "users.dashboard"), "GET dashboard")

    @contextmanager
    def _as_new_account(self) -> Iterator[None]:
        """Register and log in a fresh account for the block, then act as this user's own account again."""
        saved = (self.access_token, self._refresh_token, self._headers, self._email, self._password)
        try:
            email = f"onboarding.{secrets.token_hex(8)}@loadtest.example.com"
            password = secrets.token_urlsafe(18)
            self._need(
                self.call(
                    "POST", "auth.register", json=self.api.register_payload(self.fake, email, password)
                ),
                "register",
            )
            if not self.login(email, password):
                raise RoundFailed("log in as the new account failed")
            yield
        finally:
            self.access_token, self._refresh_token, self._headers, self._email, self._password = saved

    def _daily_workflow(self) -> None:
        self._need(self.call("GET", "users.dashboard"), "GET dashboard")
        self._need(
            self.call("GET", "evidence.list", params=self.api.evidence_list_params(self.rng)), "list evidence"
        )
        self._need(
            self.call("POST", "evidence.create", json=self.api.evidence_payload(self.fake, self.rng)),
            "create evidence",
        )
        self._need(
            self.call("GET", "evidence.search", params=self.api.search_params(self.rng)), "search evidence"
        )
        self._need(self.call("GET", "compliance.status"), "GET compliance status")

    def _peak_usage(self) -> None:
        actions: tuple[Callable[[], Any], ...] = (
            lambda: self.call("GET", "users.dashboard"),
            lambda: self.call(
                "GET", "evidence.list", params=self.api.evidence_list_params(self.rng, filtered=True)
            ),
            lambda: self.call("GET", "evidence.search", params=self.api.search_params(self.rng)),
            lambda: self.call("POST", "evidence.create", json=self.api.evidence_payload(self.fake, self.rng)),
            lambda: self.call("GET", "evidence.stats"),
            lambda: self.call("GET", "compliance.status"),
        )
        failures = [0]

        def simulated_user(n: int) -> bool:
            for i in range(10):
                if actions[(n + i) % len(actions)]() is None:
                    failures[0] += 1
            return True

        self._parallel(20, simulated_user)
        if failures[0]:
            raise RoundFailed(f"20 users x 10 actions: expected all 200 to succeed, {failures[0]} failed")
