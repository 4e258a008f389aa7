"""The one-command suite run: backend, Locust master and workers, analysis, one exit code.

`compliance-loadtest` (also `python -m locust_scenarios`) replaces the seed suite's
`run_performance_tests.py`. It starts the reference backend unless `--host` is given, one headless
Locust master and N Locust workers on loopback, shows progress while they run, writes one run folder
and runs `python -m analysis` on it; its exit code is the analysis's (0 pass, 1 a threshold or
regression failed, 2 bad input, 3 the run is not valid evidence).

Every process it starts is its own child, in a session of its own so a terminal's Ctrl-C reaches only
this process, which then stops them in order (master first, so it can tell the workers to quit and
write its reports; then workers; then the backend). On Linux each child is also told to receive
SIGTERM should this process die, so none is orphaned.

This module must not import Locust: importing Locust monkey-patches the process with gevent, and this
process only starts and watches others.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import importlib.util
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from compliance_loadtest import locustfile_path
from compliance_loadtest.config import BenchmarkConfigError, duration_seconds, load_config
from compliance_loadtest.profiles import Profile, ProfileError
from compliance_loadtest.profiles import load_profile as load_profile_file

__all__ = [
    "CATEGORIES",
    "Category",
    "SeedConfig",
    "SuitePlan",
    "SuiteUsageError",
    "build_plan",
    "main",
    "parse_duration",
    "read_seed_config",
    "resolve_categories",
]

PROG = "compliance-loadtest"

# Exit codes, the analysis's: 0 pass, 1 threshold/regression failed, 2 bad input, 3 invalid run.
EXIT_USAGE = 2
EXIT_INVALID_RUN = 3

# The seed runner's defaults (performance_config.json without a `locust` block).
SEED_USERS = 10
SEED_SPAWN_RATE = 2.0
SEED_DURATION = "60s"

LOOPBACK = "127.0.0.1"
BACKEND_READY_TIMEOUT_S = 90.0
WORKERS_CONNECT_TIMEOUT_S = 90
MASTER_STOP_TIMEOUT_S = 30.0
WORKER_STOP_TIMEOUT_S = 15.0
PROGRESS_EVERY_S = 5.0
# A run is ended by Locust itself (-t, or the profile's last stage); this is the suite's own bound on
# top of that, for a master that never returns.
RUN_GRACE_S = 120.0


class SuiteUsageError(Exception):
    """A bad option, config file or value; the message names it. Exit code 2."""


class SuiteRunError(Exception):
    """The run could not be made (backend or Locust did not start). Exit code 3: no valid run."""


# ---------------------------------------------------------------------------------------------------
# Categories: the seed runner's suite names, mapped onto user classes.


@dataclass(frozen=True)
class Category:
    """One of the seed runner's suites, and the user classes that carry it out here."""

    key: str
    """Short form accepted by --include / --exclude (`api`, `db`, ...)."""
    title: str
    """The seed runner's suite name ("API Performance", ...), also accepted."""
    user_classes: tuple[str, ...]
    """Locust user classes run for this category."""
    load_test: bool = False
    """Run only when load tests are asked for (--load-tests, a profile, or the config), as in the seed."""

    def names(self) -> tuple[str, ...]:
        return (self.key, self.title)


CATEGORIES: tuple[Category, ...] = (
    Category("api", "API Performance", ("ApiBenchmarkUser",)),
    Category("db", "Database Performance", ("DbBenchmarkUser",)),
    Category(
        "load",
        "Load Testing",
        ("ComplianceUser", "AIAssistantUser", "ReportingUser", "ChatWebSocketUser"),
        load_test=True,
    ),
    Category("memory", "Memory Testing", ("DatabaseStressUser",)),
    Category("concurrency", "Concurrency Testing", ("StressTestUser", "PeakTrafficScenario")),
)


def _category_named(name: str, option: str) -> Category:
    wanted = " ".join(name.split()).casefold()
    for category in CATEGORIES:
        if wanted in (n.casefold() for n in category.names()):
            return category
    known = ", ".join(f"{c.key} ({c.title!r})" for c in CATEGORIES)
    raise SuiteUsageError(f"{option}: unknown category {name!r}; known categories: {known}")


def resolve_categories(
    include: Sequence[str], exclude: Sequence[str], *, load_tests: bool
) -> tuple[Category, ...]:
    """The categories to run, in CATEGORIES order.

    As the seed runner: everything but the load tests by default, the load tests too when asked for;
    `--include` names exactly what runs (naming `load` there asks for the load tests), `--exclude`
    removes from that.
    """
    included = [_category_named(n, "--include") for n in include]
    excluded = {_category_named(n, "--exclude").key for n in exclude}
    if included:
        chosen = {c.key for c in included}
        if load_tests:
            chosen |= {c.key for c in CATEGORIES if c.load_test}
    else:
        chosen = {c.key for c in CATEGORIES if load_tests or not c.load_test}
    result = tuple(c for c in CATEGORIES if c.key in chosen and c.key not in excluded)
    if not result:
        raise SuiteUsageError(
            "--include/--exclude: no category left to run "
            f"(included {sorted(chosen)}, excluded {sorted(excluded)})"
        )
    return result


# ---------------------------------------------------------------------------------------------------
# Durations and the seed's performance_config.json


def parse_duration(text: str, option: str = "--duration") -> int:
    """Seconds in `120`, `120s`, `2m`, `1h30m` or `1h30m15s` (the config file's grammar); a clear error
    otherwise."""
    try:
        seconds = duration_seconds(str(text))
    except ValueError:
        raise SuiteUsageError(
            f"{option}: {text!r} is not a duration; use seconds or h/m/s units, e.g. 120s, 2m, 1h30m"
        ) from None
    if seconds <= 0:
        raise SuiteUsageError(f"{option}: {text!r} must be longer than zero seconds")
    return seconds


@dataclass(frozen=True)
class SeedConfig:
    """The seed suite's performance_config.json: defaults that command-line options override.

    A value is None when the file does not set it, so the seed runner's defaults apply; `thresholds`
    holds only the thresholds the file sets (the analysis reads them from the file itself).
    """

    path: Path | None = None
    users: int | None = None
    spawn_rate: float | None = None
    duration_s: int | None = None
    host: str | None = None
    run_load_tests: bool | None = None
    warmup_iterations: int | None = None
    benchmark_rounds: int | None = None
    thresholds: Mapping[str, float] = field(default_factory=dict)


def read_seed_config(path: Path) -> SeedConfig:
    """Read performance_config.json through the benchmarks' validator (the one place that knows the
    format), keeping what the file sets; every error names the option, the file and the key."""
    try:
        config = load_config(path)
    except BenchmarkConfigError as exc:
        raise SuiteUsageError(f"--config: {exc}") from None

    def given(key: str, value: Any) -> Any:
        return value if key in config.given else None

    locust = config.locust
    return SeedConfig(
        path=path,
        users=given("locust.users", locust.users),
        spawn_rate=given("locust.spawn_rate", locust.spawn_rate),
        duration_s=given("locust.duration", locust.duration_s),
        host=given("locust.host", locust.host),
        run_load_tests=given("run_load_tests", config.run_load_tests),
        warmup_iterations=given("warmup_iterations", config.warmup_iterations),
        benchmark_rounds=given("benchmark_rounds", config.benchmark_rounds),
        thresholds={
            f.name: getattr(config.thresholds, f.name)
            for f in fields(config.thresholds)
            if f"thresholds.{f.name}" in config.given
        },
    )


# ---------------------------------------------------------------------------------------------------
# The plan: every decision made from the options, before anything starts.


@dataclass(frozen=True)
class SuitePlan:
    """What one suite run does; built from the options and config, then carried out by `run_suite`."""

    categories: tuple[Category, ...]
    host: str | None
    """Target URL; None starts the reference backend on loopback."""
    workers: int
    users: int | None
    spawn_rate: float | None
    run_time_s: int | None
    """Locust's -t; None when a load profile ends the run itself."""
    load_profile: str | None
    profile_time_scale: float
    profile: Profile | None
    """The load profile, validated and already scaled by the time scale."""
    run_dir: Path
    thresholds: Path | None
    baseline: Path | None
    benchmark_compare: Path | None
    config: SeedConfig
    backend_database_url: str | None = None
    db_url: str | None = None
    locust_args: tuple[str, ...] = ()

    @property
    def user_classes(self) -> tuple[str, ...]:
        """The categories' classes, and any class the profile's mixes name (Locust spawns a shape's
        classes only from those it was given)."""
        names = [name for c in self.categories for name in c.user_classes]
        if self.profile is not None:
            names += sorted(self.profile.class_names() - set(names))
        return tuple(names)

    @property
    def load_seconds(self) -> float | None:
        """How long the load lasts: -t, or the profile's length, whichever ends it first."""
        lengths = [x for x in (self.run_time_s, self.profile.duration if self.profile else None) if x]
        return min(lengths) if lengths else None


def _default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _positive_int(option: str) -> Any:
    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"{text!r} must be 1 or more")
        return value

    convert.__name__ = option
    return convert


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be more than 0")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse whose errors raise SuiteUsageError (exit 2, message naming the option) instead of exiting."""

    def error(self, message: str) -> Any:
        raise SuiteUsageError(message)


def _parser() -> _Parser:
    p = _Parser(
        prog=PROG,
        description="Run the compliance load-test suite: the reference backend (unless --host), a "
        "headless Locust master with N workers on loopback, then the analysis. Exit code: 0 pass, "
        "1 a threshold or regression failed, 2 bad input, 3 the run is invalid.",
        epilog="Options after `--` go to the Locust master unchanged (e.g. -- --scenario-seed 7). "
        "Categories: " + "; ".join(f"{c.key} = {c.title!r}" for c in CATEGORIES) + ".",
    )
    p.add_argument(
        "-c", "--config", type=Path, help="performance_config.json in the seed's format (defaults)"
    )
    sel = p.add_argument_group("what runs")
    sel.add_argument(
        "--include",
        action="extend",
        nargs="+",
        default=[],
        metavar="CATEGORY",
        help="run only these categories",
    )
    sel.add_argument(
        "--exclude", action="extend", nargs="+", default=[], metavar="CATEGORY", help="skip these categories"
    )
    sel.add_argument(
        "--load-tests",
        action="store_true",
        default=None,
        help="also run the load-test users (the seed's --load-tests)",
    )
    load = p.add_argument_group("load")
    load.add_argument(
        "--load-profile", metavar="NAME", help="a load profile (smoke, ramp, ...) or a YAML path"
    )
    load.add_argument(
        "--profile-time-scale",
        type=_positive_float,
        default=1.0,
        metavar="F",
        help="multiply the profile's durations by F (default 1)",
    )
    load.add_argument(
        "-u",
        "--users",
        type=_positive_int("--users"),
        help=f"peak number of users (default {SEED_USERS}, or the config's)",
    )
    load.add_argument(
        "-r",
        "--spawn-rate",
        type=_positive_float,
        help=f"users started per second (default {SEED_SPAWN_RATE:g}, or the config's)",
    )
    load.add_argument(
        "-t",
        "--duration",
        metavar="TIME",
        help=f"run time: 120s, 2m, 1h30m (default {SEED_DURATION}, or the config's)",
    )
    load.add_argument(
        "--workers",
        type=_positive_int("--workers"),
        default=None,
        help="Locust worker processes on this machine (default: one per core)",
    )
    tgt = p.add_argument_group("target")
    tgt.add_argument("-H", "--host", help="backend URL (default: start the reference backend on loopback)")
    tgt.add_argument(
        "--backend-database-url",
        default=os.environ.get("CGPT_BACKEND_DATABASE_URL"),
        metavar="URL",
        help="storage of the started backend (default: SQLite in the run's "
        "temporary folder); also env CGPT_BACKEND_DATABASE_URL",
    )
    tgt.add_argument(
        "--db-url",
        default=os.environ.get("CGPT_DB_URL"),
        metavar="URL",
        help="database for the database users (default: the started backend's); also env CGPT_DB_URL",
    )
    out = p.add_argument_group("output and verdict")
    out.add_argument(
        "--run-dir", type=Path, help="run folder (default runs/<UTC timestamp>); must be new or empty"
    )
    out.add_argument("--thresholds", type=Path, help="thresholds file (default: the shipped ones)")
    out.add_argument("--baseline", type=Path, metavar="RUN", help="a previous run folder to compare with")
    out.add_argument(
        "--benchmark-compare",
        type=Path,
        metavar="FILE",
        help="a baseline benchmark_results.json to compare the benchmarks with (the seed's)",
    )
    return p


def build_plan(argv: Sequence[str]) -> SuitePlan:
    """Every decision of the run, from the command line and the config; SuiteUsageError on bad input."""
    argv = list(argv)
    locust_args: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, locust_args = argv[:cut], argv[cut + 1 :]
    args = _parser().parse_args(argv)

    config = read_seed_config(args.config) if args.config else SeedConfig()
    load_profile = args.load_profile.strip() if args.load_profile is not None else None
    profile = None
    if load_profile is not None:
        try:
            profile = load_profile_file(load_profile).scaled(args.profile_time_scale)
        except ProfileError as exc:
            raise SuiteUsageError(f"--load-profile: {exc}") from None
    if load_profile is None and args.profile_time_scale != 1.0:
        raise SuiteUsageError(
            "--profile-time-scale needs --load-profile: without a profile there is nothing to scale"
        )
    if load_profile and (args.users is not None or args.spawn_rate is not None):
        given = "--users" if args.users is not None else "--spawn-rate"
        raise SuiteUsageError(f"{given} conflicts with --load-profile, which sets the users itself")

    load_tests = bool(args.load_tests) or bool(config.run_load_tests) or load_profile is not None
    categories = resolve_categories(args.include, args.exclude, load_tests=load_tests)

    if args.duration is not None:
        run_time_s: int | None = parse_duration(args.duration)
    elif load_profile:
        run_time_s = None
    else:
        run_time_s = config.duration_s or parse_duration(SEED_DURATION)

    for option, path in (
        ("--thresholds", args.thresholds),
        ("--benchmark-compare", args.benchmark_compare),
    ):
        if path is not None and not path.is_file():
            raise SuiteUsageError(f"{option}: {path} is not a file")
    if args.baseline is not None and not args.baseline.is_dir():
        raise SuiteUsageError(f"--baseline: {args.baseline} is not a run folder")
    if args.baseline is not None and args.benchmark_compare is not None:
        raise SuiteUsageError("--benchmark-compare conflicts with --baseline: give one baseline")

    run_dir = args.run_dir or Path("runs") / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise SuiteUsageError(
            f"--run-dir: {run_dir} already exists and is not an empty folder; "
            "a run never writes over another, choose a new folder"
        )

    host = args.host or config.host
    if host is not None and not re.match(r"^https?://[^/\s]+", host):
        raise SuiteUsageError(f"--host: {host!r} is not an http:// or https:// URL")

    return SuitePlan(
        categories=categories,
        host=host,
        workers=args.workers or _default_workers(),
        users=None if load_profile else (args.users or config.users or SEED_USERS),
        spawn_rate=None if load_profile else (args.spawn_rate or config.spawn_rate or SEED_SPAWN_RATE),
        run_time_s=run_time_s,
        load_profile=load_profile,
        profile_time_scale=args.profile_time_scale,
        profile=profile,
        run_dir=run_dir,
        thresholds=args.thresholds,
        baseline=args.baseline,
        benchmark_compare=args.benchmark_compare,
        config=config,
        backend_database_url=args.backend_database_url or None,
        db_url=args.db_url or None,
        locust_args=tuple(locust_args),
    )


# ---------------------------------------------------------------------------------------------------
# Child processes


def _die_with_parent() -> None:
    """In the child before exec: receive SIGTERM when the suite process dies (Linux), so none is orphaned."""
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


@dataclass
class Child:
    """One process the suite started, with its log file."""

    role: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


# The order processes are stopped in: the master first (it tells the workers to quit and writes its
# reports), then workers, then the backend, so no request of a stopping worker meets a closed port.
_STOP_ORDER = {"master": 0, "worker": 1, "backend": 2}


class Children:
    """The processes of a run; stops them in order and leaves none behind."""

    def __init__(self, log_dir: Path, forced: Callable[[], bool] = lambda: False) -> None:
        self.log_dir = log_dir
        self.forced = forced
        """Asked while waiting for a process to end: True kills it at once (a second Ctrl-C)."""
        self.started: list[Child] = []
        self.descendants: dict[int, psutil.Process] = {}

    def start(self, role: str, args: Sequence[str], env: Mapping[str, str]) -> Child:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{role}.log"
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                list(args),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env),
                start_new_session=True,
                preexec_fn=_die_with_parent,  # the suite process has no other threads
            )
        child = Child(role, process, log_path)
        self.started.append(child)
        return child

    def remember_descendants(self) -> None:
        """Note grandchildren (e.g. a backend a Locust process started) so they are stopped too."""
        for child in self.started:
            with contextlib.suppress(psutil.Error):
                for p in psutil.Process(child.pid).children(recursive=True):
                    self.descendants.setdefault(p.pid, p)

    def stop(self, child: Child, timeout: float, *, force: bool = False, sig: int = signal.SIGTERM) -> None:
        """Send `sig` (SIGKILL when forced), wait up to `timeout` seconds, then SIGKILL."""
        self.remember_descendants()
        if child.alive():
            with contextlib.suppress(ProcessLookupError):
                child.process.send_signal(signal.SIGKILL if force else sig)
        deadline = time.monotonic() + timeout
        while child.alive() and time.monotonic() < deadline and not self.forced():
            time.sleep(0.05)
        if child.alive():
            child.process.kill()
        child.process.wait()

    def stop_all(self, *, force: bool = False) -> None:
        """Stop every process still running, master first and backend last, then any grandchild."""
        self.remember_descendants()
        for child in sorted(self.started, key=lambda c: _STOP_ORDER.get(c.role.split("-")[0], 1)):
            self.stop(child, 0 if force else WORKER_STOP_TIMEOUT_S, force=force)
        for p in self.descendants.values():
            with contextlib.suppress(psutil.Error):
                if p.is_running():
                    p.terminate()
        _gone, alive = psutil.wait_procs(list(self.descendants.values()), timeout=5)
        for p in alive:
            with contextlib.suppress(psutil.Error):
                p.kill()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def _child_env(extra: Mapping[str, str], drop: Sequence[str] = ()) -> dict[str, str]:
    """This process's environment minus Locust's own settings (the suite decides those) and `drop`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCUST_") and k not in drop}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


# ---------------------------------------------------------------------------------------------------
# The run


class _Signals:
    """SIGINT/SIGTERM only set flags here; the suite's loops notice them and stop the children in order.
    A second signal forces: the children are killed at once."""

    def __init__(self) -> None:
        self.received: int | None = None
        self.forced = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, _frame: object) -> None:
        if self.received is not None:
            self.forced = True
        self.received = signum

    def __enter__(self) -> _Signals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def check(self) -> None:
        if self.received is not None:
            raise KeyboardInterrupt


def _say(message: str) -> None:
    print(f"{PROG}: {message}", flush=True)


@dataclass(frozen=True)
class _Backend:
    url: str
    pid: int
    database_url: str


def _read_ready_file(path: Path) -> dict[str, Any] | None:
    """The backend's ready file, `{"url", "pid", "database_url"}`; None until it is written."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # not there yet (the backend writes it whole, by rename)
    return data if isinstance(data, dict) and data.get("url") else None


def _start_backend(plan: SuitePlan, children: Children, signals: _Signals, data_dir: Path) -> _Backend:
    """Start the reference backend on a free loopback port, with demo data, and wait until it serves.

    The suite starts it rather than letting the master do so, because then the backend is known
    before any Locust process exists (a backend that cannot start is reported as such), its database
    can be handed to the workers, which are separate processes, not forks of the master, and it is
    stopped by the suite after the workers, however the master ended.
    """
    ready_file = data_dir / "ready.json"
    database_url = plan.backend_database_url or f"sqlite:///{data_dir / 'backend.db'}"
    args = [sys.executable, "-m", "reference_backend", "serve"]
    args += ["--host", LOOPBACK, "--port", "0", "--ready-file", str(ready_file), "--demo-data"]
    # Through the environment, not argv: `ps` shows argv, and the URL may hold a password.
    env = _child_env({"CGPT_DATABASE_URL": database_url}, drop=("DATABASE_URL",))
    backend = children.start("backend", args, env)
    deadline = time.monotonic() + BACKEND_READY_TIMEOUT_S
    while (ready := _read_ready_file(ready_file)) is None:
        signals.check()
        if not backend.alive():
            raise SuiteRunError(
                f"the reference backend exited with code {backend.process.returncode} before it was "
                f"ready; end of its log ({backend.log_path}):\n{backend.log_tail()}"
            )
        if time.monotonic() > deadline:
            raise SuiteRunError(
                f"the reference backend was not ready after {BACKEND_READY_TIMEOUT_S:.0f}s; "
                f"end of its log ({backend.log_path}):\n{backend.log_tail()}"
            )
        time.sleep(0.1)
    return _Backend(str(ready["url"]).rstrip("/"), int(ready.get("pid") or backend.pid), database_url)


def available_user_classes() -> list[str]:
    """The user classes the scenarios define, as `locust -f <scenarios> --list` prints them."""
    args = [sys.executable, "-m", "locust", "-f", locustfile_path(), "--list"]
    result = subprocess.run(
        args, capture_output=True, text=True, timeout=120, env=_child_env({}), check=False
    )
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-15:])
        raise SuiteRunError(f"the scenarios in {locustfile_path()} could not be loaded:\n{tail}")
    return [ln.strip() for ln in result.stdout.splitlines()[1:] if ln.strip()]


def _check_user_classes(plan: SuitePlan) -> None:
    available = available_user_classes()
    for category in plan.categories:
        if missing := [name for name in category.user_classes if name not in available]:
            raise SuiteUsageError(
                f"category {category.key!r} ({category.title}) needs user classes {', '.join(missing)}, "
                f"which the scenarios in {locustfile_path()} do not define (they define: "
                f"{', '.join(available)}); --exclude {category.key} to run without it"
            )
    if plan.profile is not None and (missing := sorted(plan.profile.class_names() - set(available))):
        raise SuiteUsageError(
            f"--load-profile {plan.load_profile}: names unknown user classes {', '.join(missing)}"
        )


def _master_args(plan: SuitePlan, host: str, port: int, target_pid: int | None) -> list[str]:
    run_dir = plan.run_dir
    args = [sys.executable, "-m", "locust", "-f", locustfile_path(), "--headless", "--master"]
    args += ["--master-bind-host", LOOPBACK, "--master-bind-port", str(port)]
    args += ["--expect-workers", str(plan.workers)]
    args += ["--expect-workers-max-wait", str(WORKERS_CONNECT_TIMEOUT_S)]
    args += ["--host", host, "--run-dir", str(run_dir)]
    args += ["--csv", str(run_dir / "locust"), "--json-file", str(run_dir / "locust")]
    args += ["--html", str(run_dir / "locust.html"), "--only-summary"]
    if plan.load_profile:
        args += ["--load-profile", plan.load_profile, "--profile-time-scale", f"{plan.profile_time_scale:g}"]
    else:
        args += ["--users", str(plan.users), "--spawn-rate", f"{plan.spawn_rate:g}"]
    if plan.run_time_s is not None:
        args += ["--run-time", f"{plan.run_time_s}s"]
    if target_pid is not None:
        args += ["--target-pid", str(target_pid)]
    if plan.config.path is not None:
        args += ["--benchmark-config", str(plan.config.path)]
    return [*args, *plan.locust_args, *plan.user_classes]


def _worker_args(plan: SuitePlan, port: int) -> list[str]:
    """A worker names the master's user classes too: Locust sends a worker the users to start but not
    the class list, and classes that are left out unless named (the benchmark users) must be there."""
    args = [sys.executable, "-m", "locust", "-f", locustfile_path(), "--worker"]
    return [*args, "--master-host", LOOPBACK, "--master-port", str(port), *plan.user_classes]


@dataclass
class _Progress:
    """One line of progress from the master's `locust_stats_history.csv`.

    Locust appends an `Aggregated` row every second and flushes the file every five; the load's start
    is the timestamp of the first row with users, so stage and time left do not lag by a flush.
    """

    history: Path
    load_seconds: float | None
    profile: Profile | None = None
    load_started: float | None = None
    """Epoch seconds of the first history row with users or requests."""
    last_line_at: float = 0.0

    def rows(self) -> list[dict[str, str]]:
        try:
            text = self.history.read_text(encoding="utf-8")
        except OSError:
            return []
        complete = "".join(ln for ln in text.splitlines(keepends=True) if ln.endswith("\n"))
        try:
            return [r for r in csv.DictReader(io.StringIO(complete)) if r.get("Name") == "Aggregated"]
        except csv.Error:
            return []

    @staticmethod
    def _number(row: Mapping[str, str], column: str) -> float:
        try:
            return float(row.get(column) or 0)
        except ValueError:
            return 0.0

    def _running(self, row: Mapping[str, str]) -> bool:
        return self._number(row, "User Count") > 0 or self._number(row, "Total Request Count") > 0

    def load_ever_ran(self) -> bool:
        """Whether the history shows users or requests at any time (read once the master has ended)."""
        return any(self._running(r) for r in self.rows())

    def line(self, now: float) -> str | None:
        """A progress line for epoch time `now`, at most one every PROGRESS_EVERY_S seconds."""
        if now - self.last_line_at < PROGRESS_EVERY_S:
            return None
        self.last_line_at = now
        rows = self.rows()
        if self.load_started is None:
            first = next((r for r in rows if self._running(r)), None)
            if first is not None:
                self.load_started = self._number(first, "Timestamp") or now
        if not rows or self.load_started is None:
            return "[starting] waiting for the workers and the first statistics"
        row = rows[-1]
        users = int(self._number(row, "User Count"))
        total = int(self._number(row, "Total Request Count"))
        failed = int(self._number(row, "Total Failure Count"))
        elapsed = now - self.load_started
        stage = "load"
        if self.profile is not None and (at := self.profile.stage_at(elapsed)) is not None:
            stage = f"{self.profile.name} stage {at.stage.number}/{len(self.profile.stages)}"
        share = f"{100.0 * failed / total:.1f}%" if total else "0%"
        text = (
            f"[{stage}] users {users}, {self._number(row, 'Requests/s'):.1f} req/s, {total} requests, "
            f"{failed} failures ({share})"
        )
        if self.load_seconds is not None:
            text += f", ~{max(0, int(self.load_seconds - elapsed))}s left"
        return text


def _run_locust(
    plan: SuitePlan,
    host: str,
    children: Children,
    signals: _Signals,
    target_pid: int | None,
    db_url: str | None,
) -> list[str]:
    """Run master + workers until the master ends; return what went wrong with the workers (if anything)."""
    port = _free_port()
    # The master hands its options (the database URL too) to the workers when the test starts.
    env = _child_env({"CGPT_DB_URL": db_url} if db_url else {}, drop=("CGPT_EMBEDDED_BACKEND",))
    master = children.start("master", _master_args(plan, host, port, target_pid), env)
    workers = [
        children.start(f"worker-{i}", _worker_args(plan, port), env) for i in range(1, plan.workers + 1)
    ]
    _say(
        f"master pid {master.pid} on {LOOPBACK}:{port}, {len(workers)} worker(s) "
        f"(pids {', '.join(str(w.pid) for w in workers)}); logs in {children.log_dir}"
    )
    progress = _Progress(plan.run_dir / "locust_stats_history.csv", plan.load_seconds, plan.profile)
    problems: list[str] = []
    bound = (plan.load_seconds or 0) + WORKERS_CONNECT_TIMEOUT_S + RUN_GRACE_S
    started = time.monotonic()
    while master.alive():
        signals.check()
        for w in workers:
            # A worker ends with code 0 when the master tells it to quit; any other end is a loss.
            code = w.process.poll()
            if code not in (None, 0) and not any(p.startswith(f"{w.role} ") for p in problems):
                problems.append(f"{w.role} (pid {w.pid}) ended during the run with code {code}")
                _say(f"{problems[-1]}; its log: {w.log_path}")
        if all(not w.alive() for w in workers) and progress.load_started is None:
            _say("every worker ended before the load started; stopping the master")
            children.stop(master, MASTER_STOP_TIMEOUT_S)
            break
        if time.monotonic() - started > bound:
            problems.append(f"the master had not ended {bound:.0f}s after it started")
            _say(f"{problems[-1]}: stopping it")
            children.stop(master, MASTER_STOP_TIMEOUT_S)
            break
        if line := progress.line(time.time()):
            _say(line)
        children.remember_descendants()
        time.sleep(0.25)
    code = master.process.wait()
    # The master tells the workers to quit as it ends; give them a moment, then make sure.
    for w in workers:
        children.stop(w, WORKER_STOP_TIMEOUT_S)
    _say(f"master ended with code {code}")
    if code == 2 and not progress.load_ever_ran():
        # Locust's own usage errors (and the library's bad-input errors) end a run with 2 before it starts.
        raise SuiteUsageError(
            f"Locust refused the run (exit code 2); end of the master's log ({master.log_path}):\n"
            + master.log_tail()
        )
    if code != 0 and not progress.load_ever_ran():
        # e.g. the workers never all connected: there is no run to analyse.
        raise SuiteRunError(
            f"the master ended with code {code} before any load ran; end of its log ({master.log_path}):\n"
            + master.log_tail()
        )
    if code not in (0, 1):
        _say(f"end of the master's log ({master.log_path}):\n{master.log_tail()}")
    return problems


def _analysis_args(plan: SuitePlan, out_dir: Path) -> list[str]:
    """`python -m analysis RUN`, with the thresholds, the seed config's thresholds block, the baseline."""
    args = [sys.executable, "-m", "analysis", str(plan.run_dir), "--out", str(out_dir)]
    if plan.thresholds is not None:
        args += ["--thresholds", str(plan.thresholds)]
    if plan.config.path is not None:
        args += ["--config", str(plan.config.path)]
    if plan.baseline is not None:
        args += ["--baseline", str(plan.baseline)]
    if plan.benchmark_compare is not None:
        # The seed compared benchmark files; the analysis compares runs: a run holding just that file.
        baseline = plan.run_dir / "benchmark-baseline"
        baseline.mkdir(exist_ok=True)
        shutil.copyfile(plan.benchmark_compare, baseline / "benchmark_results.json")
        args += ["--baseline", str(baseline)]
    return args


def run_suite(plan: SuitePlan) -> int:
    """Carry out a plan; the exit code is the analysis's (or 3 when no valid run could be made)."""
    if importlib.util.find_spec("analysis.__main__") is None:
        print(f"{PROG}: error: the analysis package is not installed (pip install compliance-loadtest)")
        return EXIT_USAGE
    try:
        _check_user_classes(plan)
    except SuiteUsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr, flush=True)
        return EXIT_USAGE
    except SuiteRunError as exc:
        _say(f"error: {exc}")
        return EXIT_INVALID_RUN
    plan.run_dir.mkdir(parents=True, exist_ok=True)
    signals = _Signals()
    children = Children(plan.run_dir / "logs", forced=lambda: signals.forced)
    _say(
        f"run folder {plan.run_dir}; categories: {', '.join(c.title for c in plan.categories)}; "
        f"user classes: {', '.join(plan.user_classes)}"
    )
    with signals, tempfile.TemporaryDirectory(prefix="compliance-suite-") as data_dir:
        try:
            host, target_pid, db_url = plan.host, None, plan.db_url
            if host is None:
                _say("starting the reference backend")
                backend = _start_backend(plan, children, signals, Path(data_dir))
                host, target_pid, db_url = backend.url, backend.pid, db_url or backend.database_url
                _say(f"reference backend ready at {host} (pid {backend.pid})")
            problems = _run_locust(plan, host, children, signals, target_pid, db_url)
        except KeyboardInterrupt:
            signum = signals.received or signal.SIGINT
            _say(f"{signal.Signals(signum).name} received: stopping the master, the workers and the backend")
            master = next((c for c in children.started if c.role == "master"), None)
            if master is not None and not signals.forced:
                # The same signal: the master records how the run ended (run.json's ended_by).
                children.stop(master, MASTER_STOP_TIMEOUT_S, sig=signum)
            children.stop_all(force=signals.forced)
            _say(f"stopped; what was written is in {plan.run_dir} (an interrupted run gets no verdict)")
            return 128 + int(signum)
        except SuiteRunError as exc:
            _say(f"error: {exc}")
            return EXIT_INVALID_RUN
        except SuiteUsageError as exc:
            print(f"{PROG}: error: {exc}", file=sys.stderr, flush=True)
            return EXIT_USAGE
        finally:
            children.stop_all()

    _say("running the analysis")
    analysis = subprocess.Popen(_analysis_args(plan, plan.run_dir / "report"))
    try:
        code = analysis.wait()
    except KeyboardInterrupt:  # Ctrl-C reaches the analysis too (same process group): let it end
        analysis.wait()
        _say(f"interrupted during the analysis; the run folder is {plan.run_dir}")
        return 128 + int(signal.SIGINT)
    if problems and code in (0, 1):
        _say("the run is not valid evidence, whatever the thresholds say: " + "; ".join(problems))
        code = EXIT_INVALID_RUN
    _say(f"exit code {code}")
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """The `compliance-loadtest` command."""
    try:
        plan = build_plan(sys.argv[1:] if argv is None else argv)
    except SuiteUsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        print(f"Try `{PROG} --help`.", file=sys.stderr)
        return EXIT_USAGE
    return run_suite(plan)
