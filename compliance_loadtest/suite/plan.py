"""What a suite run does, decided from the command line and the seed's performance_config.json before
anything starts: the categories (the seed runner's suite names, mapped onto user classes), the seed
config (read through `compliance_loadtest.config.load_config`, the one validator of that file) and
the `SuitePlan`.

Bad input raises `SuiteUsageError` naming the option, file or key. Nothing here starts a process or
writes a file; nothing here imports Locust.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

from compliance_loadtest.categories import CATEGORIES, Category
from compliance_loadtest.config import BenchmarkConfigError, duration_seconds, load_config
from compliance_loadtest.errors import ProfileError, SuiteUsageError
from compliance_loadtest.profiles import Profile
from compliance_loadtest.profiles import load_profile as load_profile_file

__all__ = [
    "CATEGORIES",
    "PROG",
    "Category",
    "SeedConfig",
    "SuitePlan",
    "build_plan",
    "parse_duration",
    "read_seed_config",
    "resolve_categories",
]

PROG = "compliance-loadtest"

# The seed runner's defaults (performance_config.json without a `locust` block).
SEED_USERS = 10
SEED_SPAWN_RATE = 2.0
SEED_DURATION = "60s"

# ---------------------------------------------------------------------------------------------------
# Categories: the seed runner's suite names, mapped onto user classes (`compliance_loadtest.categories`).


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
    """Read performance_config.json through `compliance_loadtest.config` (the one place that knows the
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


def _positive_int(option: str) -> Callable[[str], int]:
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

    def error(self, message: str) -> NoReturn:
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
