"""The suite's progress line, read from a stats history file in Locust's layout: stage, users,
requests/s, failures and time left, one line every few seconds, and nothing from a half-written row."""

from __future__ import annotations

from pathlib import Path

from compliance_loadtest.profiles import parse_profile
from compliance_loadtest.suite.progress import PROGRESS_EVERY_S, Progress

HEADER = (
    "Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%,"
    "Total Request Count,Total Failure Count,Total Median Response Time,Total Average Response Time,"
    "Total Min Response Time,Total Max Response Time,Total Average Content Size\n"
)
T0 = 1_800_000_000


def row(t: int, users: int, rps: float, total: int, failures: int) -> str:
    return (
        f"{t},{users},,Aggregated,{rps:f},0.000000,{','.join(['N/A'] * 11)},{total},{failures},0,0.0,0,0,0\n"
    )


def test_before_any_user_runs_it_says_it_is_starting(tmp_path: Path) -> None:
    history = tmp_path / "locust_stats_history.csv"
    progress = Progress(history, load_seconds=60)
    assert progress.line(T0) == "[starting] waiting for the workers and the first statistics"
    history.write_text(HEADER + row(T0, 0, 0, 0, 0))
    assert (
        progress.line(T0 + PROGRESS_EVERY_S) == "[starting] waiting for the workers and the first statistics"
    )
    assert not progress.load_ever_ran()


def test_users_rate_failures_and_time_left_count_from_the_first_row_with_users(tmp_path: Path) -> None:
    history = tmp_path / "locust_stats_history.csv"
    history.write_text(
        HEADER + row(T0, 0, 0, 0, 0) + row(T0 + 1, 2, 3.5, 4, 0) + row(T0 + 8, 4, 12.25, 200, 5)
    )
    progress = Progress(history, load_seconds=60)
    assert progress.line(T0 + 11) == "[load] users 4, 12.2 req/s, 200 requests, 5 failures (2.5%), ~50s left"
    assert progress.load_ever_ran()


def test_one_line_every_few_seconds_not_a_flood(tmp_path: Path) -> None:
    history = tmp_path / "locust_stats_history.csv"
    history.write_text(HEADER + row(T0, 1, 1.0, 1, 0))
    progress = Progress(history, load_seconds=None)
    assert progress.line(T0 + 1) == "[load] users 1, 1.0 req/s, 1 requests, 0 failures (0.0%)"
    assert progress.line(T0 + 1 + PROGRESS_EVERY_S / 2) is None
    assert progress.line(T0 + 1 + PROGRESS_EVERY_S) is not None


def test_a_half_written_last_row_is_not_read(tmp_path: Path) -> None:
    history = tmp_path / "locust_stats_history.csv"
    history.write_text(HEADER + row(T0, 2, 5.0, 10, 0) + row(T0 + 1, 3, 6.0, 16, 0)[:12])
    assert Progress(history, load_seconds=None).line(T0 + 2) == (
        "[load] users 2, 5.0 req/s, 10 requests, 0 failures (0.0%)"
    )


def test_with_a_profile_the_stage_is_the_profiles(tmp_path: Path) -> None:
    profile = parse_profile(
        "stages:\n  - {duration: 10, users: 2, spawn_rate: 2}\n  - {duration: 20, users: 4, spawn_rate: 2}\n",
        source="two-steps.yaml",
        name="two-steps",
    )
    history = tmp_path / "locust_stats_history.csv"
    history.write_text(HEADER + row(T0, 2, 1.0, 5, 0))
    progress = Progress(history, load_seconds=profile.duration, profile=profile)
    assert progress.line(T0 + 5).startswith("[two-steps stage 1/2] users 2,")  # type: ignore[union-attr]
    assert (
        progress.line(T0 + 12)
        == "[two-steps stage 2/2] users 2, 1.0 req/s, 5 requests, 0 failures (0.0%), ~18s left"
    )
