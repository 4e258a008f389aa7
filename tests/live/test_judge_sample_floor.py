"""The live verdict calls a rule with too few samples "not enough samples", as the analysis does, and
never a rule that broke: the analysis's own word for it is a warning, which the live verdict used to log
as "broke" (a 5.5 ms mean "breaking" `mean < 500 ms` on four logins) and which could stop a run."""

from __future__ import annotations

import time

import yaml

from analysis import RunStats, parse_thresholds
from compliance_loadtest.plugin.live import _frame, judge, run_stats
from compliance_loadtest.plugin.record import RequestRecorder

RULES = """
rules:
  - {id: login.mean, select: {name: /api/auth/login}, metric: mean, op: "<", value: 500ms}
  - id: slow.mean
    select: {name: /api/slow}
    metric: mean
    op: "<"
    value: 100ms
    min_samples: 50
    abort: {window: 10s, min_samples: 20}
  - {id: slow.count, select: {name: /api/slow}, metric: count, op: "<", value: 10}
"""


def stats(logins: int, slow: int) -> RunStats | None:
    recorder = RequestRecorder("local")
    now = time.time()
    for i in range(logins):
        recorder.on_request("POST", "/api/auth/login", 5.5, 10, None, {}, now - 5 + i * 0.01)
    for i in range(slow):
        recorder.on_request("GET", "/api/slow", 900.0, 10, None, {}, now - 5 + i * 0.01)
    return run_stats(_frame([recorder.take_table()]))


def statuses(text: str, logins: int, slow: int) -> dict[str, tuple[str, int]]:
    thresholds = parse_thresholds(yaml.safe_load(text), "thresholds.yaml")
    judged = judge(stats(logins, slow), thresholds.rules, thresholds.min_samples)
    return {j.rule: (j.status, j.samples) for j in judged}


def test_too_few_samples_is_not_enough_samples_not_a_broken_rule() -> None:
    got = statuses(RULES, logins=4, slow=30)
    assert got["login.mean"] == ("not enough samples", 4)  # meets its limit, on fewer than the file's 5
    # Breaks its limit, on enough requests for its abort but fewer than the rule's own 50: no verdict,
    # so no stop either.
    assert got["slow.mean"] == ("not enough samples", 30)
    assert got["slow.count"] == ("fail", 30)  # a count needs no floor


def test_enough_samples_give_the_verdict_and_the_files_floor_counts() -> None:
    got = statuses(RULES, logins=5, slow=50)
    assert got["login.mean"] == ("pass", 5) and got["slow.mean"] == ("fail", 50)
    got = statuses("min_samples: 2\n" + RULES, logins=2, slow=0)
    assert got["login.mean"] == ("pass", 2)
