"""performance_config.json in the seed's format: defaults, the shipped example, and errors naming the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from compliance_loadtest.config import BenchmarkConfig, BenchmarkConfigError, load_config

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "performance_config.json"


def test_defaults_are_the_seeds() -> None:
    cfg = BenchmarkConfig()
    assert (cfg.warmup_iterations, cfg.benchmark_rounds, cfg.run_load_tests) == (3, 10, False)
    assert (cfg.locust.users, cfg.locust.spawn_rate, cfg.locust.duration) == (10, 2.0, "60s")
    assert (
        cfg.thresholds.api_response_time,
        cfg.thresholds.database_query_time,
        cfg.thresholds.memory_increase_mb,
    ) == (2.0, 1.0, 100.0)


def test_shipped_example_loads() -> None:
    cfg = load_config(EXAMPLE)
    assert cfg.benchmark_rounds == 10 and cfg.warmup_iterations == 3
    assert cfg.locust.host.startswith("http://127.0.0.1")
    assert cfg.source == str(EXAMPLE)


def test_every_key_is_optional(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"benchmark_rounds": 2}))
    cfg = load_config(path)
    assert (cfg.benchmark_rounds, cfg.warmup_iterations, cfg.locust.users) == (2, 3, 10)


@pytest.mark.parametrize(
    ("duration", "text", "seconds"),
    [(120, "120s", 120), ("120", "120s", 120), ("2m", "2m", 120), ("1h30m15s", "1h30m15s", 5415)],
)
def test_durations_in_seconds_or_units(tmp_path: Path, duration: object, text: str, seconds: int) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"locust": {"duration": duration}}))
    cfg = load_config(path)
    assert (cfg.locust.duration, cfg.locust.duration_s) == (text, seconds)


def test_given_lists_the_keys_the_file_sets(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"benchmark_rounds": 10, "locust": {"users": 10}, "thresholds": {}}))
    assert load_config(path).given == {"benchmark_rounds", "locust.users"}
    assert load_config(EXAMPLE).given >= {"warmup_iterations", "locust.host", "thresholds.memory_increase_mb"}
    assert BenchmarkConfig().given == frozenset()


@pytest.mark.parametrize(
    ("content", "key", "problem"),
    [
        ({"benchmark_rounds": 0}, "benchmark_rounds", "at least 1"),
        ({"warmup_iterations": -1}, "warmup_iterations", "at least 0"),
        ({"warmup_iterations": "3"}, "warmup_iterations", "whole number"),
        ({"benchmark_rounds": 2.5}, "benchmark_rounds", "whole number"),
        ({"run_load_tests": "yes"}, "run_load_tests", "true or false"),
        ({"benchmark_round": 3}, "benchmark_round", "unknown key"),
        ({"locust": []}, "locust", "JSON object"),
        ({"locust": {"users": "ten"}}, "locust.users", "whole number"),
        ({"locust": {"spawn_rate": 0}}, "locust.spawn_rate", "greater than 0"),
        ({"locust": {"duration": "soon"}}, "locust.duration", "duration"),
        ({"locust": {"host": "ftp://127.0.0.1"}}, "locust.host", "http"),
        ({"locust": {"workers": 2}}, "locust.workers", "unknown key"),
        ({"thresholds": {"api_response_time": -1}}, "thresholds.api_response_time", "greater than 0"),
        ({"thresholds": {"memory_increase_mb": None}}, "thresholds.memory_increase_mb", "a number"),
        ({"thresholds": {"api_reponse_time": 1}}, "thresholds.api_reponse_time", "unknown key"),
        ({"locust": {"host": ""}}, "locust.host", "http"),
        ({"locust": {"duration": "0s"}}, "locust.duration", "longer than zero"),
        ({"locust": {"duration": True}}, "locust.duration", "duration"),
        ({"locust": {"spawn_rate": float("inf")}}, "locust.spawn_rate", "greater than 0"),
        ({"thresholds": {"api_response_time": float("nan")}}, "thresholds.api_response_time", "finite"),
        ({"thresholds": {"database_query_time": float("inf")}}, "thresholds.database_query_time", "finite"),
        ({"thresholds": {"memory_increase_mb": float("-inf")}}, "thresholds.memory_increase_mb", "than 0"),
        ({"thresholds": {"api_response_time": "2"}}, "thresholds.api_response_time", "a number"),
        ({"thresholds": {"api_response_time": True}}, "thresholds.api_response_time", "a number"),
        ({"thresholds": []}, "thresholds", "JSON object"),
    ],
)
def test_bad_value_names_file_and_key(tmp_path: Path, content: object, key: str, problem: str) -> None:
    path = tmp_path / "performance_config.json"
    path.write_text(json.dumps(content))
    with pytest.raises(BenchmarkConfigError, match=problem) as err:
        load_config(path)
    assert err.value.key == key
    assert str(err.value).startswith(f"{path}: key '{key}': ")


@pytest.mark.parametrize(("text", "problem"), [("{", "not valid JSON"), ("[1]", "JSON object, got a list")])
def test_unreadable_file_names_the_file(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "performance_config.json"
    path.write_text(text)
    with pytest.raises(BenchmarkConfigError, match=problem) as err:
        load_config(path)
    assert str(path) in str(err.value)


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(BenchmarkConfigError, match="cannot be read"):
        load_config(tmp_path / "absent.json")
