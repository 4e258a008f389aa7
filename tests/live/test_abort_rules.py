"""The `abort` key of a threshold rule: parsed with the rule, refused with the file and key when wrong."""

from __future__ import annotations

from typing import Any

import pytest

from analysis import parse_thresholds
from analysis._thresholds import Abort
from analysis.errors import ThresholdsError


def rule(**extra: Any) -> dict[str, Any]:
    return {"id": "api.mean", "metric": "mean", "op": "<", "value": "500ms", **extra}


def test_abort_takes_a_window_a_delay_and_a_sample_floor() -> None:
    raw = rule(abort={"window": "10s", "after": "1500ms", "min_samples": 50})
    (parsed,) = parse_thresholds({"rules": [raw]}, "t.yaml").rules
    assert parsed.abort == Abort(window_s=10.0, after_s=1.5, min_samples=50)
    assert "over the last 10 s after 1.5 s" in parsed.abort.text()


def test_abort_defaults_and_rules_without_it() -> None:
    with_abort, without = parse_thresholds({"rules": [rule(abort={}), rule(id="x")]}, "t.yaml").rules
    assert with_abort.abort == Abort(window_s=10.0, after_s=0.0, min_samples=20)
    assert without.abort is None


@pytest.mark.parametrize(
    ("abort", "key", "message"),
    [
        ({"windw": "10s"}, "rules[0].abort.windw", "unknown key; abort takes after, min_samples, window"),
        ({"window": "ten"}, "rules[0].abort.window", "'ten' is not a duration"),
        ({"window": "10%"}, "rules[0].abort.window", "is not a duration"),
        ({"window": 0}, "rules[0].abort.window", "must be more than 0 s"),
        ({"after": -1}, "rules[0].abort.after", "must not be negative"),
        ({"min_samples": 0}, "rules[0].abort.min_samples", "at least 1, not 0"),
        ("10s", "rules[0].abort", "must be a mapping such as {window: 10s, after: 5s}"),
    ],
)
def test_a_bad_abort_names_the_file_and_key(abort: object, key: str, message: str) -> None:
    with pytest.raises(ThresholdsError, match=message) as caught:
        parse_thresholds({"rules": [rule(abort=abort)]}, "t.yaml")
    assert str(caught.value).startswith(f"t.yaml, key {key!r}: "), str(caught.value)


def test_resource_rules_cannot_stop_a_run() -> None:
    raw = {"metric": "memory_increase_mb", "op": "<", "value": 100, "abort": {"window": "5s"}}
    with pytest.raises(ThresholdsError, match="only request metrics can stop a run"):
        parse_thresholds({"rules": [raw]}, "t.yaml")
