"""What a microbenchmark user is made of: rounds with warm-up, results, the end of its work.

`BenchmarkUserMixin` gives a user class what a benchmark user needs: `self.bench(name, fn, ...)` runs
the warm-up iterations (which reach no stats) and then the measured rounds, each fired as one request
event of type `BENCH`; `self.finish_benchmarks()` says the user is done and leaves it idle. Results
travel to the run's `BenchSession` (`compliance_loadtest.plugin.benchmarks`), which writes them.
Benchmark users take no part in a mixed run unless they are asked for (see
`compliance_loadtest.plugin.benchmarks.leave_out_of_mixes`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import gevent
from locust.exception import CatchResponseError

from compliance_loadtest.config import BenchmarkConfig, BenchmarkConfigError
from compliance_loadtest.plugin.benchmarks import MSG_RESULT, MSG_USER_DONE, session_for
from compliance_loadtest.steps.base import StepFailed

logger = logging.getLogger(__name__)

# How long a benchmark user that has finished waits between (empty) iterations: it idles until the run
# stops, so the runner's user counts stay what was dispatched and the run's end can be detected.
IDLE_SECONDS = 24 * 3600.0


# --------------------------------------------------------------------------------------------------
# Rounds


class RoundFailed(Exception):
    """A round's checks failed; the message says what was expected and what happened."""


@dataclass
class _Progress:
    data: list[float] = field(default_factory=list)
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    measures: dict[str, list[Any]] = field(default_factory=dict)


class BenchmarkUserMixin:
    """What every benchmark user shares. Mix in before the Locust user base class.

    A subclass sets `bench_group` (`bench-api`, `bench-db`) and runs its benchmarks one after the other
    in a single task through `self.bench(...)`, then calls `self.finish_benchmarks()`.
    """

    is_benchmark_user = True
    """Marks the class for the run's `BenchSession`, which stops the run when all such users are done."""

    bench_group: str = "bench"
    """The `group` of the exact record and of `benchmark_results.json` for this user's benchmarks."""

    environment: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._bench_done = False
        self._reported: set[str] = set()
        try:
            self.bench_config: BenchmarkConfig = session_for(self.environment).current_config()
        except BenchmarkConfigError as exc:
            # Only on a worker whose master sent a config file this machine cannot read: nothing to run.
            logger.error("Bad --benchmark-config: %s", exc)
            self.environment.process_exit_code = 2
            self.bench_config = BenchmarkConfig()
            self.finish_benchmarks()

    def wait_time(self) -> float:
        # Back to back while measuring; a finished user idles (and is stopped at once when the run stops).
        return IDLE_SECONDS if self._bench_done else 0.0

    @property
    def finished(self) -> bool:
        """Whether this user has run (or given up on) all its benchmarks."""
        return self._bench_done

    @staticmethod
    def let_the_loop_turn() -> None:
        """Give the worker's event loop a turn, so its other users read the responses that arrived
        while this user blocked it (a SQLite call, CPU work): before every round, and now and then in a
        long preparation. Not `gevent.sleep(0)`, which may come back before the loop polls its sockets."""
        gevent.sleep(0.001)

    def quiet(self) -> AbstractContextManager[Any]:
        """A context in which this user's requests reach no stats (for warm-up). Override per transport."""
        return nullcontext()

    def bench(
        self,
        name: str,
        round_fn: Callable[[], object],
        *,
        before_round: Callable[[], object] | None = None,
        after_round: Callable[[], object] | None = None,
        extra_info: Mapping[str, Any] | None = None,
    ) -> None:
        """Run benchmark `name`: warm-up iterations (quiet, unmeasured), then the measured rounds.

        `round_fn` is timed with `time.perf_counter`; it raises `RoundFailed` when a check fails (a
        step's `StepFailed` counts the same), and may return measures as a mapping
        (`{"rss_growth_mb": 3.2}`; any other return value is ignored): numbers are kept per round and
        their largest value, anything else as last seen; `ttft_ms` and `tokens` also go into the round's
        request context (the exact record's columns). `before_round` / `after_round` run untimed around
        each round.
        """
        cfg = self.bench_config
        progress = _Progress()
        for _ in range(cfg.warmup_iterations):
            with self.quiet():
                try:
                    self._one_round(round_fn, before_round, after_round)
                except Exception as exc:  # a failing warm-up is seen again in the measured rounds
                    logger.debug("warm-up of %s failed: %s", name, exc)
        for _ in range(cfg.benchmark_rounds):
            start_time = time.time()
            exception: Exception | None = None
            measures: Mapping[str, Any] | None = None
            try:
                measures, elapsed = self._one_round(round_fn, before_round, after_round)
            except _TimedFailure as failure:
                exception, elapsed = failure.exception, failure.elapsed
            if exception is None:
                progress.data.append(elapsed)
                for key, value in (measures or {}).items():
                    progress.measures.setdefault(key, []).append(value)
            else:
                progress.failed += 1
                message = _message(exception)
                if message not in progress.errors:
                    progress.errors.append(message)
                if isinstance(exception, RoundFailed | StepFailed):
                    # A failed check reads like an HTTP check failure in Locust's reports: the message alone.
                    exception = CatchResponseError(message)
            context: dict[str, Any] = {
                "group": self.bench_group,
                "user_class": type(self).__name__,
                "tags": "",
            }
            for key in ("ttft_ms", "tokens"):
                if measures and key in measures:
                    context[key] = measures[key]
            self.environment.events.request.fire(
                request_type="BENCH",
                name=name,
                response_time=elapsed * 1000.0,
                response_length=0,
                response=None,
                exception=exception,
                context=context,
                start_time=start_time,
                url=None,
            )
        self._send_result(name, progress, extra_info or {})

    def _one_round(
        self,
        round_fn: Callable[[], object],
        before_round: Callable[[], object] | None,
        after_round: Callable[[], object] | None,
    ) -> tuple[Mapping[str, Any] | None, float]:
        # Untimed: rounds that block the loop would otherwise run back to back, and the worker's other
        # users would wait the whole benchmark for their responses.
        self.let_the_loop_turn()
        # Whatever goes wrong, in the round or around it, fails this round only, never the user.
        if before_round is not None:
            try:
                before_round()
            except Exception as exc:
                raise _TimedFailure(exc, 0.0) from exc
        start = time.perf_counter()
        try:
            returned = round_fn()
        except Exception as exc:
            raise _TimedFailure(exc, time.perf_counter() - start) from exc
        elapsed = time.perf_counter() - start
        measures = returned if isinstance(returned, Mapping) else None
        if after_round is not None:
            try:
                after_round()
            except Exception as exc:
                raise _TimedFailure(exc, elapsed) from exc
        return measures, elapsed

    def _send_result(self, name: str, progress: _Progress, extra_info: Mapping[str, Any]) -> None:
        self._reported.add(name)
        extra: dict[str, Any] = dict(extra_info)
        for key, values in progress.measures.items():
            numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
            if numbers and len(numbers) == len(values):
                extra[key] = max(numbers)
                extra[f"{key}_per_round"] = values
            else:
                extra[key] = values[-1]
        part = {
            "name": name,
            "group": self.bench_group,
            "data": progress.data,
            "failed_rounds": progress.failed,
            "errors": progress.errors[:20],
            "rounds_expected": self.bench_config.benchmark_rounds,
            "warmup_iterations": self.bench_config.warmup_iterations,
            "extra_info": extra,
        }
        runner = self.environment.runner
        if runner is not None:
            runner.send_message(MSG_RESULT, part)

    @contextmanager
    def section(self, *names: str) -> Iterator[None]:
        """Set-up shared by benchmarks `names`. If anything in the block raises, each of those benchmarks
        that has not reported yet fails all its rounds with the error as message, and the user goes on."""
        try:
            yield
        except Exception as exc:
            logger.exception("%s: set-up of %s failed", type(self).__name__, ", ".join(names))
            self.fail_all(names, f"set-up failed: {_message(exc)}")

    def fail_all(self, names: Iterable[str], message: str) -> None:
        """Fail every round of each benchmark of `names` not reported yet, with `message` as the cause:
        a benchmark that could not run is a failed benchmark, never a finished one."""
        for name in names:
            if name in self._reported:
                continue
            self.environment.events.request.fire(
                request_type="BENCH",
                name=name,
                response_time=0.0,
                response_length=0,
                response=None,
                exception=CatchResponseError(message),
                context={"group": self.bench_group, "user_class": type(self).__name__, "tags": ""},
                start_time=time.time(),
                url=None,
            )
            failed = _Progress(failed=self.bench_config.benchmark_rounds, errors=[message])
            self._send_result(name, failed, {})

    def finish_benchmarks(self) -> None:
        """Say this user has run all its benchmarks; from now on it idles until the run stops."""
        if self._bench_done:
            return
        self._bench_done = True
        runner = self.environment.runner
        if runner is not None:
            runner.send_message(MSG_USER_DONE, {"user_class": type(self).__name__})


def _message(exc: BaseException) -> str:
    """A failed round's message: a check's own words, or the unexpected exception's repr."""
    return str(exc) if isinstance(exc, RoundFailed | StepFailed) else repr(exc)


class _TimedFailure(Exception):
    def __init__(self, exception: Exception, elapsed: float) -> None:
        super().__init__(str(exception))
        self.exception, self.elapsed = exception, elapsed


# --- measuring the target -------------------------------------------------------------------------


def target_pid(environment: Any, host: str | None) -> int | None:
    """The process serving the target: `--target-pid`, the embedded backend, or the process listening on
    the target's loopback port. None when it cannot be known (a remote target, or no permission)."""
    pid = getattr(environment.parsed_options, "target_pid", None)
    if pid:
        return int(pid)
    try:
        from compliance_loadtest.plugin.embedded import embedded_backend

        backend = embedded_backend()
        if backend is not None and backend.pid:
            return int(backend.pid)
    except ImportError:
        pass
    if not host:
        return None
    from compliance_loadtest.plugin.monitor import find_listening_pid, is_loopback_host, target_address

    address = target_address(host)
    if address is None or not is_loopback_host(address[0]):
        return None
    return find_listening_pid(address[1])


def rss_mb(pid: int | None) -> float | None:
    """Resident memory of `pid` in MiB, or None when it cannot be read."""
    if pid is None:
        return None
    import psutil

    try:
        return float(psutil.Process(pid).memory_info().rss) / (1024 * 1024)
    except (psutil.Error, OSError):
        return None


@contextmanager
def rss_growth(pid: int | None, into: dict[str, Any], key: str = "rss_growth_mb") -> Iterator[None]:
    """Record in `into[key]` how much the resident memory of `pid` grew during the block (MiB)."""
    before = rss_mb(pid)
    yield
    after = rss_mb(pid)
    if before is not None and after is not None:
        into[key] = round(after - before, 3)
