"""The suite command's options and the seed's performance_config.json: what they decide, and how bad
input is refused (exit 2, a message naming the option, file or key, nothing started or overwritten)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from compliance_loadtest.errors import (
    LoadTestError,
    SuiteRunError,
    SuiteUsageError,
    UsageError,
    exit_code_for,
)
from compliance_loadtest.suite import main
from compliance_loadtest.suite.plan import (
    CATEGORIES,
    build_plan,
    parse_duration,
    read_seed_config,
    resolve_categories,
)

SEED_EXAMPLE = {
    "warmup_iterations": 3,
    "benchmark_rounds": 10,
    "run_load_tests": True,
    "locust": {"users": 50, "spawn_rate": 5, "duration": "300s", "host": "http://localhost:8000"},
    "thresholds": {"api_response_time": 2.0, "database_query_time": 1.0, "memory_increase_mb": 100},
}


def write_config(tmp_path: Path, data: object, name: str = "performance_config.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def keys(categories: object) -> list[str]:
    return [c.key for c in categories]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("120s", 120), ("2m", 120), ("1h30m", 5400), ("90", 90), ("1h", 3600), ("1m30s", 90), ("1h0m5s", 3605)],
)
def test_durations_in_the_seeds_forms_are_read_as_seconds(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "2 minutes", "1.5m", "0s", "0", "30m1h", "-5s"])
def test_a_bad_duration_names_the_option_and_the_value(text: str) -> None:
    with pytest.raises(SuiteUsageError, match=r"--duration: .* (is not a duration|longer than zero)"):
        parse_duration(text)


def test_by_default_everything_but_the_load_tests_runs_as_in_the_seed() -> None:
    assert keys(resolve_categories([], [], load_tests=False)) == ["api", "db", "memory", "concurrency"]
    assert keys(resolve_categories([], [], load_tests=True)) == [c.key for c in CATEGORIES]


def test_categories_are_named_by_the_seeds_titles_or_short_forms() -> None:
    assert keys(resolve_categories(["API Performance", "db"], [], load_tests=False)) == ["api", "db"]
    assert keys(resolve_categories(["load testing"], [], load_tests=False)) == ["load"]
    assert keys(resolve_categories([], ["Memory Testing", "concurrency"], load_tests=True)) == [
        "api",
        "db",
        "load",
    ]


def test_the_suites_errors_are_the_librarys_with_their_exit_codes() -> None:
    assert issubclass(SuiteUsageError, UsageError) and exit_code_for(SuiteUsageError("x")) == 2
    assert issubclass(SuiteRunError, LoadTestError) and exit_code_for(SuiteRunError("x")) == 3


def test_an_unknown_category_or_an_empty_selection_is_refused() -> None:
    with pytest.raises(SuiteUsageError, match=r"--include: unknown category 'Speed Testing'.*api"):
        resolve_categories(["Speed Testing"], [], load_tests=False)
    with pytest.raises(SuiteUsageError, match=r"--exclude: unknown category 'x'"):
        resolve_categories([], ["x"], load_tests=False)
    with pytest.raises(SuiteUsageError, match="no category left to run"):
        resolve_categories(["api"], ["API Performance"], load_tests=False)


def test_categories_map_onto_the_user_classes_that_carry_them_out(tmp_path: Path) -> None:
    plan = build_plan(["--include", "api", "db", "--run-dir", str(tmp_path / "r")])
    assert plan.user_classes == ("ApiBenchmarkUser", "DbBenchmarkUser")
    plan = build_plan(["--load-tests", "--exclude", "api", "db", "memory", "concurrency", "--run-dir", "x"])
    assert "ComplianceUser" in plan.user_classes
    assert "ApiBenchmarkUser" not in plan.user_classes


def test_the_seeds_config_gives_the_defaults(tmp_path: Path) -> None:
    path = write_config(tmp_path, SEED_EXAMPLE)
    config = read_seed_config(path)
    assert (config.users, config.spawn_rate, config.duration_s) == (50, 5.0, 300)
    assert config.host == "http://localhost:8000"
    assert (config.warmup_iterations, config.benchmark_rounds, config.run_load_tests) == (3, 10, True)
    assert config.thresholds == {
        "api_response_time": 2.0,
        "database_query_time": 1.0,
        "memory_increase_mb": 100,
    }

    plan = build_plan(["-c", str(path), "--run-dir", str(tmp_path / "run")])
    assert (plan.users, plan.spawn_rate, plan.run_time_s, plan.host) == (
        50,
        5.0,
        300,
        "http://localhost:8000",
    )
    assert "load" in keys(plan.categories)  # run_load_tests: true


def test_only_what_the_config_sets_overrides_the_seed_runners_defaults(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"locust": {"duration": 90}, "thresholds": {"memory_increase_mb": 50}})
    config = read_seed_config(path)
    assert (config.duration_s, config.users, config.spawn_rate, config.host) == (90, None, None, None)
    assert (config.run_load_tests, config.warmup_iterations, config.benchmark_rounds) == (None, None, None)
    assert config.thresholds == {"memory_increase_mb": 50.0}
    plan = build_plan(["-c", str(path), "--run-dir", str(tmp_path / "run")])
    assert (plan.users, plan.spawn_rate, plan.run_time_s, plan.host) == (10, 2.0, 90, None)
    assert "load" not in keys(plan.categories)
    path.write_text(json.dumps({"locust": {"duration": " 1h30m "}}))
    assert read_seed_config(path).duration_s == 5400


def test_command_line_options_override_the_config(tmp_path: Path) -> None:
    path = write_config(tmp_path, SEED_EXAMPLE)
    plan = build_plan(
        [
            *("--config", str(path), "--users", "3", "-r", "1.5", "--duration", "1h30m"),
            *("--host", "http://127.0.0.1:9", "--run-dir", str(tmp_path / "run")),
        ]
    )
    assert (plan.users, plan.spawn_rate, plan.run_time_s, plan.host) == (3, 1.5, 5400, "http://127.0.0.1:9")


def test_without_config_the_seed_runners_defaults_apply(tmp_path: Path) -> None:
    plan = build_plan(["--run-dir", str(tmp_path / "run")])
    assert (plan.users, plan.spawn_rate, plan.run_time_s, plan.host) == (10, 2.0, 60, None)
    assert plan.workers >= 1


def test_a_load_profile_sets_the_users_itself(tmp_path: Path) -> None:
    plan = build_plan(["--load-profile", "smoke", "--profile-time-scale", "0.1", "--run-dir", "r"])
    assert (plan.load_profile, plan.users, plan.run_time_s, plan.profile_time_scale) == (
        "smoke",
        None,
        None,
        0.1,
    )
    assert "load" in keys(plan.categories)
    assert plan.profile is not None and plan.profile.name == "smoke"
    assert plan.load_seconds == pytest.approx(plan.profile.duration)
    unscaled = build_plan(["--load-profile", "smoke"]).load_seconds
    assert unscaled is not None and plan.load_seconds == pytest.approx(0.1 * unscaled)
    with pytest.raises(SuiteUsageError, match="--users conflicts with --load-profile"):
        build_plan(["--load-profile", "smoke", "--users", "5"])
    with pytest.raises(SuiteUsageError, match="--profile-time-scale needs --load-profile"):
        build_plan(["--profile-time-scale", "0.5"])


def test_an_unknown_or_broken_load_profile_is_refused_before_anything_starts(tmp_path: Path) -> None:
    with pytest.raises(
        SuiteUsageError, match=r"--load-profile: nosuch: unknown profile; shipped profiles are .*smoke"
    ):
        build_plan(["--load-profile", "nosuch"])
    broken = tmp_path / "broken.yaml"
    broken.write_text("stages:\n  - {duration: -5, users: 2, spawn_rate: 1}\n")
    with pytest.raises(SuiteUsageError, match=r"--load-profile: .*broken.yaml: stage 1: key 'duration'"):
        build_plan(["--load-profile", str(broken)])


def test_options_after_a_double_dash_go_to_locust_unchanged(tmp_path: Path) -> None:
    plan = build_plan(["--run-dir", "r", "--", "--scenario-seed", "7", "--stop-timeout", "5"])
    assert plan.locust_args == ("--scenario-seed", "7", "--stop-timeout", "5")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("{not json", r"--config: .*: not valid JSON \(line 1, column 2"),
        ([1, 2], "expected a JSON object, got a list"),
        ({"benchmark_round": 3}, r"key 'benchmark_round': unknown key \(known keys: warmup_iterations"),
        ({"locust": {"user": 3}}, r"key 'locust.user': unknown key \(known keys: users,"),
        (
            {"locust": {"users": "ten"}},
            r"key 'locust.users': expected a whole number of at least 1, got 'ten'",
        ),
        ({"locust": {"users": 0}}, r"key 'locust.users': expected a whole number of at least 1, got 0"),
        (
            {"locust": {"spawn_rate": -1}},
            r"key 'locust.spawn_rate': expected a number greater than 0, got -1",
        ),
        ({"locust": {"duration": "soon"}}, r"key 'locust.duration': expected a duration .* got 'soon'"),
        ({"locust": {"host": ""}}, r"key 'locust.host': expected an http:// or https:// URL, got ''"),
        ({"locust": []}, r"key 'locust': expected a JSON object, got a list"),
        ({"run_load_tests": "yes"}, r"key 'run_load_tests': expected true or false, got 'yes'"),
        ({"warmup_iterations": -1}, r"key 'warmup_iterations': expected a whole number of at least 0"),
        ({"benchmark_rounds": 2.5}, r"key 'benchmark_rounds': expected a whole number of at least 1"),
        (
            {"thresholds": {"api_response_time": "fast"}},
            r"key 'thresholds.api_response_time': expected a number greater than 0, got 'fast'",
        ),
        # refused before the run, not by the analysis after it
        ({"thresholds": {"api_reponse_time": 1}}, r"key 'thresholds.api_reponse_time': unknown key"),
        ({"locust": {"duration": "0s"}}, r"key 'locust.duration': must be longer than zero seconds"),
        ({"locust": {"spawn_rate": float("nan")}}, r"key 'locust.spawn_rate': .* greater than 0, got nan"),
        ({"locust": {"host": "localhost:8000"}}, r"key 'locust.host': expected an http:// or https://"),
    ],
)
def test_a_bad_config_names_the_file_and_the_key(tmp_path: Path, data: object, message: str) -> None:
    path = write_config(tmp_path, data)
    with pytest.raises(SuiteUsageError, match=message) as caught:
        read_seed_config(path)
    assert str(path) in str(caught.value)


def test_a_missing_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(SuiteUsageError, match=r"--config: .*nope\.json: cannot be read"):
        build_plan(["-c", str(tmp_path / "nope.json")])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--users", "zero"], r"--users: .*'zero' is not a whole number"),
        (["--workers", "0"], r"--workers: .*must be 1 or more"),
        (["--spawn-rate", "0"], r"--spawn-rate: .*must be more than 0"),
        (["--duration", "2 minutes"], r"--duration: '2 minutes' is not a duration"),
        (["--frobnicate"], r"unrecognized arguments: --frobnicate"),
        (["--host", "localhost:8000"], r"--host: 'localhost:8000' is not an http"),
        (["--thresholds", "missing.yaml"], r"--thresholds: missing.yaml is not a file"),
        (["--baseline", "missing-run"], r"--baseline: missing-run is not a run folder"),
        (["--include", "Speed Testing"], r"--include: unknown category"),
    ],
)
def test_a_bad_option_exits_2_naming_it(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main([*argv, "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("compliance-loadtest: error: ")
    assert re.search(message, err), err
    assert not (tmp_path / "run").exists()


def test_a_run_folder_that_holds_something_is_never_written_over(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text('{"keep": true}')
    with pytest.raises(SuiteUsageError, match=r"--run-dir: .*already exists .* choose a new folder"):
        build_plan(["--run-dir", str(run)])
    assert (run / "run.json").read_text() == '{"keep": true}'


def test_the_installed_command_and_python_m_refuse_a_bad_config_with_exit_2(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"locust": {"users": "ten"}})
    script = Path(sys.executable).with_name("compliance-loadtest")
    for command in ([str(script)], [sys.executable, "-m", "compliance_loadtest"]):
        result = subprocess.run(
            [*command, "--config", str(path), "--run-dir", str(tmp_path / "run")],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2, result.stderr
        assert (
            f"--config: {path}: key 'locust.users': expected a whole number of at least 1, got 'ten'"
            in result.stderr
        )
    assert not (tmp_path / "run").exists()
