"""Shared machinery of the microbenchmark users: configuration, rounds and warm-up, end of run, results.

- `--benchmark-config` is read with `_bench_results.load_config` in every process; a bad file stops
  the run with exit code 2 before it starts, the message naming the file and the key.
- `BenchmarkUserMixin` gives a user class what a benchmark user needs: `self.bench(name, fn, ...)`
  runs the warm-up iterations (which reach no stats) and then the measured rounds, each fired as one
  request event of type `BENCH`; `self.finish_benchmarks()` says the user is done and leaves it idle.
- One `BenchSession` per Locust environment gathers the users' rounds on the master (workers send
  them as Locust messages), stops the run once every benchmark user has finished, and writes
  `benchmark_results.json` (pytest-benchmark's layout, see `_bench_results`) into `--run-dir`.
- Benchmark users take no part in a mixed run unless they are asked for (see `_leave_out_of_mixes`).

Imported by dotted name only, so its listeners are registered once.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent
from locust import events
from locust.exception import CatchResponseError
from locust.runners import STATE_CLEANUP, STATE_STOPPED, STATE_STOPPING, WorkerRunner

import locust_scenarios._options  # noqa: F401  (registers --benchmark-config, --run-dir, --db-url)
from locust_scenarios._bench_results import (
    RESULTS_FILE,
    BenchmarkConfig,
    BenchmarkConfigError,
    BenchmarkResult,
    load_config,
    results_document,
    write_results,
)

logger = logging.getLogger(__name__)

MSG_RESULT = "compliance_bench_result"
MSG_USER_DONE = "compliance_bench_user_done"

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

    def quiet(self) -> AbstractContextManager[Any]:
        """A context in which this user's requests reach no stats (for warm-up). Override per transport."""
        return nullcontext()

    def bench(
        self,
        name: str,
        round_fn: Callable[[], Mapping[str, Any] | None],
        *,
        before_round: Callable[[], object] | None = None,
        after_round: Callable[[], object] | None = None,
        extra_info: Mapping[str, Any] | None = None,
    ) -> None:
        """Run benchmark `name`: warm-up iterations (quiet, unmeasured), then the measured rounds.

        `round_fn` is timed with `time.perf_counter`; it raises `RoundFailed` when a check fails, and
        may return measures (`{"rss_growth_mb": 3.2}`): numbers are kept per round and their largest
        value, anything else as last seen; `ttft_ms` and `tokens` also go into the round's request
        context (the exact record's columns). `before_round` / `after_round` run untimed around each round.
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
                message = str(exception) if isinstance(exception, RoundFailed) else repr(exception)
                if message not in progress.errors:
                    progress.errors.append(message)
                if isinstance(exception, RoundFailed):
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
        round_fn: Callable[[], Mapping[str, Any] | None],
        before_round: Callable[[], object] | None,
        after_round: Callable[[], object] | None,
    ) -> tuple[Mapping[str, Any] | None, float]:
        # Whatever goes wrong, in the round or around it, fails this round only, never the user.
        if before_round is not None:
            try:
                before_round()
            except Exception as exc:
                raise _TimedFailure(exc, 0.0) from exc
        start = time.perf_counter()
        try:
            measures = round_fn()
        except Exception as exc:
            raise _TimedFailure(exc, time.perf_counter() - start) from exc
        elapsed = time.perf_counter() - start
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
            message = f"set-up failed: {exc!r}"
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


class _TimedFailure(Exception):
    def __init__(self, exception: Exception, elapsed: float) -> None:
        super().__init__(str(exception))
        self.exception, self.elapsed = exception, elapsed


def is_benchmark_class(cls: object) -> bool:
    return isinstance(cls, type) and issubclass(cls, BenchmarkUserMixin)


# --------------------------------------------------------------------------------------------------
# The run: one session per environment


class BenchSession:
    """What a process knows about the run's benchmarks. On the master (or a local run) it gathers the
    users' results, notices when every benchmark user has finished, and writes the results file."""

    def __init__(self, environment: Any) -> None:
        self.environment = environment
        self.config = _config_from_options(environment)
        self.results: dict[str, BenchmarkResult] = {}
        self.finished_users = 0
        self.spawning_complete = False
        self.stopping = False

    def current_config(self) -> BenchmarkConfig:
        """The configuration the options name now. A worker started without `--benchmark-config` gets the
        master's options when the test starts, after `init`: read the file they name then."""
        path = str(getattr(self.environment.parsed_options, "benchmark_config", "") or "")
        if (path or "defaults") != self.config.source:
            self.config = load_config(path) if path else BenchmarkConfig()
        return self.config

    # master / local side
    def install(self) -> None:
        runner = self.environment.runner
        if runner is None or isinstance(runner, WorkerRunner):
            return
        runner.register_message(MSG_RESULT, self._on_result)
        runner.register_message(MSG_USER_DONE, self._on_user_done)
        ev = self.environment.events
        ev.test_start.add_listener(self._on_test_start)
        ev.spawning_complete.add_listener(self._on_spawning_complete)
        ev.test_stop.add_listener(self._on_test_stop)

    def _on_test_start(self, **_kwargs: Any) -> None:
        self.results.clear()
        self.finished_users = 0
        self.spawning_complete = False
        self.stopping = False

    def _on_result(self, environment: Any, msg: Any, **_kwargs: Any) -> None:
        part = dict(msg.data)
        name = str(part["name"])
        result = self.results.setdefault(name, BenchmarkResult(name=name, group=str(part["group"])))
        result.merge(part)

    def _on_user_done(self, environment: Any, msg: Any, **_kwargs: Any) -> None:
        self.finished_users += 1
        self._stop_when_all_done()

    def _on_spawning_complete(self, **_kwargs: Any) -> None:
        self.spawning_complete = True
        # Called before the runner has recorded its targets on a local runner: check once it has.
        gevent.spawn_later(0, self._stop_when_all_done)

    def expected_users(self) -> int:
        runner = self.environment.runner
        targets: Mapping[str, int] = getattr(runner, "target_user_classes_count", {}) or {}
        names = {c.__name__ for c in self.environment.user_classes if is_benchmark_class(c)}
        return sum(int(targets.get(n, 0)) for n in names)

    def _stop_when_all_done(self) -> None:
        expected = self.expected_users()
        if self.stopping or not self.spawning_complete or expected == 0 or self.finished_users < expected:
            return
        runner = self.environment.runner
        if runner.state in (STATE_STOPPING, STATE_STOPPED, STATE_CLEANUP):
            return  # stopped for another reason (--run-time, a lost worker): nothing left to end
        self.stopping = True
        options = self.environment.parsed_options
        headless = bool(getattr(options, "headless", False)) or options is None
        logger.info(
            "All %d benchmark users finished their rounds: %s the run",
            expected,
            "ending" if headless else "stopping",
        )
        # Not from inside a user's greenlet or a message handler: quitting kills those.
        gevent.spawn(runner.quit if headless else runner.stop)

    def _on_test_stop(self, **_kwargs: Any) -> None:
        has_bench_users = any(is_benchmark_class(c) for c in self.environment.user_classes)
        if not self.results and not has_bench_users:
            return
        run_dir = str(getattr(self.environment.parsed_options, "run_dir", "") or "")
        if not run_dir:
            if self.results:
                logger.info(
                    "No --run-dir given: benchmark results are only in Locust's stats (request type BENCH)"
                )
            return
        options = {
            "warmup_iterations": self.config.warmup_iterations,
            "benchmark_rounds": self.config.benchmark_rounds,
            "config": self.config.source,
        }
        path = write_results(
            Path(run_dir) / RESULTS_FILE, results_document(self.results.values(), options=options)
        )
        logger.info("Wrote %d benchmark results to %s", len(self.results), path)


_sessions: weakref.WeakKeyDictionary[Any, BenchSession] = weakref.WeakKeyDictionary()


def session_for(environment: Any) -> BenchSession:
    """This environment's session, created on first use (normally by the `init` listener)."""
    session = _sessions.get(environment)
    if session is None:
        session = _sessions[environment] = BenchSession(environment)
    return session


def _config_from_options(environment: Any) -> BenchmarkConfig:
    path = str(getattr(environment.parsed_options, "benchmark_config", "") or "")
    return load_config(path) if path else BenchmarkConfig()


@events.init.add_listener
def _on_init(environment: Any, **_kwargs: Any) -> None:
    try:
        session = session_for(environment)
    except BenchmarkConfigError as exc:
        logger.error("Bad --benchmark-config: %s", exc)
        raise SystemExit(2) from None
    if not isinstance(environment.runner, WorkerRunner):
        # A worker starts what the master dispatches, by name: it must keep every class it may be sent.
        _leave_out_of_mixes(environment)
    session.install()


def _leave_out_of_mixes(environment: Any) -> None:
    """Benchmark users run only when asked for.

    Locust runs every class it found unless classes are named on the command line; a weight of 0 is no
    way out (Locust then drops the class even when it is named). So when a run holds benchmark users
    next to other users, those not named on the command line (`locust -f locust_scenarios
    ApiBenchmarkUser`) nor in the `--load-profile`'s mix are taken out of the run here. The web UI's
    class picker (`--class-picker`) still offers them.
    """
    options = environment.parsed_options
    named = set(getattr(options, "user_classes", None) or ())
    profile = str(getattr(options, "load_profile", "") or "").strip()
    if profile:
        # A load profile whose mix names a benchmark user asks for it too.
        try:
            from locust_scenarios._profiles import load_profile

            named |= load_profile(profile).class_names()
        except Exception:  # a bad profile is reported, with exit code 2, by the profile's own check
            pass
    classes = environment.user_classes
    bench = [c for c in classes if is_benchmark_class(c) and c.__name__ not in named]
    if bench and len(bench) < len(classes):
        environment.user_classes[:] = [c for c in classes if c not in bench]
        logger.info(
            "%s left out of the mix: name them on the command line to run them",
            ", ".join(c.__name__ for c in bench),
        )


# --------------------------------------------------------------------------------------------------
# Measuring the target


def target_pid(environment: Any, host: str | None) -> int | None:
    """The process serving the target: `--target-pid`, the embedded backend, or the process listening on
    the target's loopback port. None when it cannot be known (a remote target, or no permission)."""
    pid = getattr(environment.parsed_options, "target_pid", None)
    if pid:
        return int(pid)
    try:
        from locust_scenarios._embedded import embedded_backend

        backend = embedded_backend()
        if backend is not None and backend.pid:
            return int(backend.pid)
    except ImportError:
        pass
    if not host:
        return None
    from locust_scenarios._monitor import find_listening_pid, is_loopback_host, target_address

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
