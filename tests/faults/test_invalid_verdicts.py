"""Every broken run is invalid (exit 3) and the analysis gives the true reason, from what run.json says.

The faults themselves are made for real in the other tests of this folder; these cover each line of
run.json that makes a run invalid, one at a time, on an otherwise passing run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from analysis.__main__ import main
from tests.analysis.runs import Entry, simple_run


def verdict(tmp_path: Path, **run_info: Any) -> tuple[int, list[str]]:
    run = simple_run(tmp_path / "run", [Entry("GET", "/health", [1.0] * 20)], **run_info)
    code = main([str(run), "--report", "json", "--out", str(tmp_path / "out")])
    doc = json.loads(next((tmp_path / "out").glob("*.json")).read_text())
    return code, doc["verdict"]["invalid_reasons"]


def test_a_passing_run_is_valid(tmp_path: Path) -> None:
    assert verdict(tmp_path) == (0, [])


@pytest.mark.parametrize(
    ("run_info", "reason"),
    [
        (
            # SIGKILL: run.json is the one written at the start, its worker list empty.
            {"ended_at": None, "ended_by": None, "exit_code": None, "complete": False,
             "workers": {"expected": 2, "seen": [], "lost": [], "lost_reasons": {}, "rows": {}}},
            "run.json was never finalised: the run (or its master) was killed before it could end; "
            "its outputs are incomplete",
        ),
        ({"ended_by": None}, "run.json does not say how the run ended (ended_by is null)"),
        (
            {"complete": False, "problems": ["disk full writing requests/part-000012.parquet"]},
            "the run reports: disk full writing requests/part-000012.parquet",
        ),
        (
            {"complete": False, "record": {"rows": 20, "parts": 1, "agrees_with_locust": False}},
            "the exact record's totals differ from Locust's",
        ),
    ],
)  # fmt: skip
def test_each_fault_recorded_in_run_json_is_invalid_with_its_reason(
    tmp_path: Path, run_info: dict[str, Any], reason: str
) -> None:
    code, reasons = verdict(tmp_path, **run_info)
    assert code == 3
    assert reason in reasons
    # The true reason, not one that follows from an unfinished run.json.
    assert not any("expected workers took part" in r for r in reasons)
