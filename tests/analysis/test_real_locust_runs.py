"""Real runs: Locust headless against the reference backend (2 users, 3 s), with the library's run
folder, analysed from the exact record and from Locust's own CSV/JSON alone."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pytest

from analysis import analyse, compute_stats, load_run, load_thresholds, report_document, validate_report
from analysis.__main__ import main
from tests.backend_process import Backend
from tests.record.runs import headless
from tests.record.runs import run as run_locust

LOCUSTFILE = """
import locust_scenarios  # noqa: F401  (installs the library's options and listeners)
from locust import FastHttpUser, constant, task


class Probe(FastHttpUser):
    wait_time = constant(0.05)

    @task(3)
    def health(self):
        self.client.get("/health")

    @task(1)
    def bad_login(self):
        self.client.post("/api/auth/login", json={"email": "nobody@example.com", "password": "wrong"})
"""

HEALTH_ONLY = """
rules:
  - {id: health-p95, select: {name: /health}, metric: p95, op: "<", value: 1s}
  - {id: health-ok, select: {name: /health}, metric: failure_ratio, op: "<", value: 1%}
  - {id: memory, metric: memory_increase_mb, op: "<", value: 100}
"""
WITH_LOGIN = (
    HEALTH_ONLY
    + """
  - {id: login-ok, select: {request_type: POST, name: /api/auth/login},
     metric: failure_ratio, op: "<", value: 5%}
"""
)


@pytest.fixture(scope="module")
def real_run(backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("real")
    (root / "probe.py").write_text(LOCUSTFILE)
    run = root / "run"
    cmd = [
        sys.executable, "-m", "locust", "-f", "probe.py", "--headless", "-u", "2", "-r", "2", "-t", "3s",
        "--host", backend.url, "--csv", "run/locust", "--json-file", "run/locust", "--run-dir", "run",
        "--only-summary", "--stop-timeout", "2",
    ]  # fmt: skip
    r = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=90)
    assert (run / "locust_stats.csv").exists(), r.stderr[-3000:]
    return run


def test_exact_record_and_locust_agree_on_counts_and_means(real_run: Path) -> None:
    data = load_run(real_run)
    exact = compute_stats(data)
    assert exact.percentile_source == "exact"
    assert data.locust_json is not None and data.stats is not None
    final = {(e["method"], e["name"]): e for e in data.locust_json}
    csv = {(r["request_type"], r["name"]): r for r in data.stats.to_dict("records")}
    for e in exact.entries.to_dict("records"):
        key = (e["request_type"], e["name"])
        # locust.json is written at shutdown: it counts exactly what the record holds.
        assert (e["count"], e["failures"]) == (final[key]["num_requests"], final[key]["num_failures"])
        assert e["mean"] == pytest.approx(final[key]["total_response_time"] / final[key]["num_requests"])
        # _stats.csv is rewritten every second, not at shutdown: it may miss the last second.
        assert csv[key]["count"] <= e["count"]
    assert set(exact.entries["name"]) == {"/health", "/api/auth/login"}
    login = exact.entries[exact.entries["name"] == "/api/auth/login"].iloc[0]
    assert login["count"] > 0 and login["failures"] == login["count"]  # wrong password: every login is a 401


def test_locust_output_alone_gives_the_same_counts_and_means(real_run: Path, tmp_path: Path) -> None:
    only_locust = tmp_path / "locust-only"
    only_locust.mkdir()
    for f in real_run.glob("locust*"):
        shutil.copy(f, only_locust / f.name)
    hist = compute_stats(load_run(only_locust))
    exact = compute_stats(load_run(real_run))
    assert hist.percentile_source == "histogram"
    merged = exact.entries.merge(hist.entries, on=["request_type", "name"], suffixes=("_exact", "_hist"))
    assert len(merged) == 2
    assert (merged["count_exact"] == merged["count_hist"]).all()
    # Locust sums unrounded response times, so the means agree; only its percentiles are bucketed.
    assert merged["mean_exact"].to_numpy() == pytest.approx(merged["mean_hist"].to_numpy(), rel=1e-6)
    csv_only = tmp_path / "csv-only"
    csv_only.mkdir()
    shutil.copy(real_run / "locust_stats.csv", csv_only / "locust_stats.csv")
    from_csv = compute_stats(load_run(csv_only))
    assert from_csv.percentile_source == "csv"
    assert set(from_csv.entries["name"]) == {"/health", "/api/auth/login"}


def test_exit_codes_and_reports_on_a_real_run(real_run: Path, tmp_path: Path) -> None:
    (tmp_path / "health.yaml").write_text(HEALTH_ONLY)
    (tmp_path / "login.yaml").write_text(WITH_LOGIN)
    out = tmp_path / "out"
    assert main([str(real_run), "--thresholds", str(tmp_path / "health.yaml"), "--out", str(out)]) == 0
    doc = json.loads(next(out.glob("*.json")).read_text())
    validate_report(doc)
    assert doc["summary"]["system_metrics"]["sampled"] is True
    # A plain Locust user gives no class to the record: the groups decide, and sampling is no memory test.
    assert doc["summary"]["suites_run"] == ["Load Testing"]
    assert {t["rule"]: t["status"] for t in doc["thresholds"]} == {
        "health-p95": "pass",
        "health-ok": "pass",
        "memory": "pass",
    }
    root = ET.parse(next(out.glob("*.junit.xml"))).getroot()
    assert [c.get("classname") for c in root.iter("testcase")] == [
        "validity",
        "thresholds.health-p95",
        "thresholds.health-ok",
        "thresholds.memory",
    ]
    out2 = tmp_path / "out2"
    assert main([str(real_run), "--thresholds", str(tmp_path / "login.yaml"), "--out", str(out2)]) == 1
    junit = ET.parse(next(out2.glob("*.junit.xml"))).getroot()
    failed = [c.get("classname") for c in junit.iter("testcase") if c.find("failure") is not None]
    assert failed == ["thresholds.login-ok"]
    md = next(out2.glob("*.md")).read_text()
    assert "### Most frequent failures" in md and "| POST /api/auth/login |" in md and "401" in md
    # Compared with the same requests in a run folder of their own, the run shows no regression.
    out3 = tmp_path / "out3"
    again = shutil.copytree(real_run, tmp_path / "again")
    code = main(
        [
            str(again),
            "--thresholds",
            str(tmp_path / "health.yaml"),
            "--baseline",
            str(real_run),
            "--out",
            str(out3),
        ]
    )
    assert code == 0
    regressions = json.loads(next(out3.glob("*.json")).read_text())["regressions"]
    assert {r["entry"] for r in regressions} == {"GET /health", "POST /api/auth/login"}
    assert not any(r["regressed"] for r in regressions)


REVIEWER_JOURNEY = """
from locust import constant, task
from locust_scenarios import ApiUser, dashboards
from locust_scenarios.stress_test import StressTestUser  # noqa: F401  (the library's, run beside it)


class ReviewerJourney(ApiUser):
    wait_time = constant(0.05)

    @task
    def review(self):
        dashboards.user_dashboard(self)
        dashboards.compliance_status(self)
"""


def test_a_users_own_journey_beside_a_shipped_class_names_both_suites(
    backend: Backend, tmp_path: Path
) -> None:
    locustfile = tmp_path / "reviewer.py"
    locustfile.write_text(REVIEWER_JOURNEY)
    run = tmp_path / "run"
    _, log = run_locust(headless(locustfile, backend.url, run, 2, 3, "--only-summary"), tmp_path, 90)
    assert (run / "run.json").exists(), log[-3000:]
    record = pd.read_parquet(run / "requests")
    meta = json.loads((run / "run.json").read_text())
    # run.json's counts per class are the record's own.
    assert meta["record"]["user_classes"] == record["user_class"].value_counts().to_dict()
    assert set(meta["record"]["user_classes"]) == {"ReviewerJourney", "StressTestUser"}, log[-3000:]
    a = analyse(load_run(run), load_thresholds())
    assert report_document(a)["summary"]["suites_run"] == ["Concurrency Testing", "Load Testing"]
