"""The microbenchmarks' run: one `BenchSession` per Locust environment.

On the master (or a local run) the session gathers the benchmark users' rounds (workers send them as
Locust messages), stops the run once every benchmark user has finished, and writes
`benchmark_results.json` (pytest-benchmark's layout, see `compliance_loadtest.bench_results`) into
`--run-dir`. `on_init` is registered by `compliance_loadtest.plugin.install`: it reads
`--benchmark-config` (a bad file stops the run with exit code 2 before it starts) and takes the
benchmark users out of mixed runs that do not ask for them.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gevent
from locust.runners import STATE_CLEANUP, STATE_STOPPED, STATE_STOPPING, WorkerRunner

from compliance_loadtest.bench_results import BenchmarkResult, results_document, write_results
from compliance_loadtest.config import BenchmarkConfig, load_config
from compliance_loadtest.plugin.ending import end_test
from compliance_loadtest.run_folder import BENCHMARK_RESULTS_JSON as RESULTS_FILE

logger = logging.getLogger(__name__)

MSG_RESULT = "compliance_bench_result"
MSG_USER_DONE = "compliance_bench_user_done"


def is_benchmark_class(cls: object) -> bool:
    """A user class that runs benchmarks (it mixes in `BenchmarkUserMixin`)."""
    return isinstance(cls, type) and bool(getattr(cls, "is_benchmark_user", False))


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
        how = end_test(self.environment)
        logger.info(
            "All %d benchmark users finished their rounds: %s the run",
            expected,
            "ending" if how == "quitting" else "stopping",
        )

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


def on_init(environment: Any, **_kwargs: Any) -> None:
    session = session_for(environment)  # raises BenchmarkConfigError (a UsageError) for a bad file
    if not isinstance(environment.runner, WorkerRunner):
        # A worker starts what the master dispatches, by name: it must keep every class it may be sent.
        leave_out_of_mixes(environment)
    session.install()


def leave_out_of_mixes(environment: Any) -> None:
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
            from compliance_loadtest.profiles import load_profile

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
