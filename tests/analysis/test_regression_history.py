"""Run history: a series of synthetic runs with one step change reports the change at the right run;
the command reads a folder of runs as CI artifacts hold them (one folder per run, in any order, their
start time in run.json), writes history.json and history.html, and exits 1 only when the newest run
starts a regression. A folder of runs is also a several-run baseline for the one-run analysis."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from analysis import load_run
from analysis._history import change_points_summary, e_divisive, find_runs, history, to_history_html
from tests.analysis.runs import Entry, lognormal, simple_run

LOGIN, SEARCH = ("POST", "/api/auth/login"), ("GET", "/api/evidence/search")


def history_runs(root: Path, search_medians: list[float], noise: float = 0.02) -> list[Path]:
    """One run folder per median, named so that name order is NOT start order (artifacts are not)."""
    rng = np.random.default_rng(7)
    runs = []
    for n, median in enumerate(search_medians):
        d = root / f"performance-run-{(n * 7919) % 1000:03d}"
        d.mkdir(parents=True)
        wobble = float(np.exp(rng.normal(0, noise)))
        simple_run(
            d,
            [
                Entry(*LOGIN, lognormal(1500, 50 * wobble, 0.4, 100 + n)),
                Entry(*SEARCH, lognormal(1500, median * wobble, 0.4, 200 + n)),
            ],
            started_at=f"2026-10-{n + 1:02d}T12:00:00+00:00",
        )
        runs.append(d)
    return runs


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "analysis", *map(str, args)], capture_output=True, text=True, timeout=300
    )


def test_one_step_change_is_found_at_the_run_that_made_it() -> None:
    rng = np.random.default_rng(1)
    series = np.concatenate([rng.normal(0.0, 0.02, 9), rng.normal(0.1, 0.02, 7)])
    assert [c for c, _ in e_divisive(series)] == [9]
    assert e_divisive(rng.normal(0.0, 0.02, 16)) == []


def test_a_stretch_in_the_middle_is_two_change_points() -> None:
    rng = np.random.default_rng(2)
    series = np.concatenate([rng.normal(0, 0.02, 8), rng.normal(0.1, 0.02, 5), rng.normal(0, 0.02, 7)])
    assert [c for c, _ in e_divisive(series)] == [8, 13]


def test_history_of_runs_reports_the_step_per_entry_and_metric(tmp_path: Path) -> None:
    medians = [200.0] * 8 + [240.0] * 6
    runs = history_runs(tmp_path / "artifacts", medians)
    found = find_runs([tmp_path / "artifacts"])
    assert sorted(found) == sorted(runs)
    h = history([load_run(r) for r in found])
    assert h.runs == tuple(str(r) for r in runs)  # start order, not name order
    trends = {(t.entry, t.metric): t for t in h.trends}
    p50 = trends[("GET /api/evidence/search", "p50")]
    assert [c.index for c in p50.change_points] == [8]
    (step,) = p50.change_points
    assert step.worse and step.change == pytest.approx(0.20, abs=0.05)
    assert step.run == str(runs[8])
    assert not trends[("POST /api/auth/login", "p50")].change_points
    assert {m for e, m in trends if e == "GET /api/evidence/search"} >= {
        "p50",
        "p95",
        "p99",
        "failure_ratio",
        "rps",
    }
    # The newest run belongs to the slower stretch, which it did not start: no alarm.
    assert h.exit_code == 0 and not h.regressed
    points = sum(len(t.change_points) for t in h.trends)
    worse = sum(c.worse for t in h.trends for c in t.change_points)
    assert change_points_summary(h) == f"{points} change point(s), {worse} of them worse"
    html = to_history_html(h)
    assert html.count("<th>at run</th>") == 1 and html.count("<table>") == html.count("</table>") == 2
    assert html.count("<tr class='fail'><td>GET /api/evidence/search</td><td>p50</td><td>9: ") == 1


def test_the_command_exits_1_when_the_newest_run_starts_a_regression(tmp_path: Path) -> None:
    history_runs(tmp_path / "artifacts", [200.0] * 9 + [250.0])
    r = cli("history", tmp_path / "artifacts", "--out", tmp_path / "out")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "regression in the newest run: GET /api/evidence/search: slower: p50" in r.stdout
    doc = json.loads((tmp_path / "out" / "history.json").read_text())
    assert len(doc["runs"]) == 10
    assert doc["verdict"] == {"exit_code": 1, "newest_run_regressed": ["GET /api/evidence/search"]}
    newest = {n["entry"]: n for n in doc["newest"]}
    assert newest["GET /api/evidence/search"]["baseline_runs"] == 9
    assert newest["POST /api/auth/login"]["regressed"] is False
    html = (tmp_path / "out" / "history.html").read_text()
    assert "the newest run starts a regression" in html and html.count("<svg") == len(doc["trends"])
    assert html.count("<table>") == html.count("</table>")


def test_the_command_exits_0_on_a_steady_history(tmp_path: Path) -> None:
    history_runs(tmp_path / "artifacts", [200.0] * 6)
    r = cli("history", tmp_path / "artifacts", "--out", tmp_path / "out")
    assert r.returncode == 0, r.stdout + r.stderr
    assert (
        "6 runs; no change points: no entry's trend steps significantly (p < 0.05) across these runs\n"
        "the newest run starts no regression" in r.stdout
    )
    html = (tmp_path / "out" / "history.html").read_text()
    assert "<th>at run</th>" not in html and "no change points: no entry's trend steps" in html


def test_a_history_too_short_for_change_points_says_so(tmp_path: Path) -> None:
    history_runs(tmp_path / "artifacts", [200.0] * 3)
    r = cli("history", tmp_path / "artifacts", "--out", tmp_path / "out")
    assert r.returncode == 0, r.stdout + r.stderr
    why = "no change points: looking for one needs at least 4 runs of an entry, and there are 3"
    assert f"3 runs; {why}" in r.stdout
    assert why in (tmp_path / "out" / "history.html").read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["history", "{tmp}/empty"], "is not a run folder and holds none"),
        (["history", "{tmp}/artifacts/performance-run-000"], "a history needs at least two runs, got 1"),
        # one run named twice is one run
        (
            [
                "history",
                "{tmp}/artifacts/performance-run-000",
                "{tmp}/artifacts/../artifacts/performance-run-000/",
            ],
            "a history needs at least two runs, got 1",
        ),
    ],
)
def test_bad_history_input_exits_2_with_a_message(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "empty").mkdir()
    history_runs(tmp_path / "artifacts", [200.0, 200.0])
    r = cli(*(a.format(tmp=tmp_path) for a in args))
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_a_folder_of_runs_is_a_several_run_baseline(tmp_path: Path) -> None:
    history_runs(tmp_path / "baselines", [200.0] * 4)
    cur = tmp_path / "cur"
    cur.mkdir()
    simple_run(cur, [Entry(*SEARCH, lognormal(1500, 200, 0.4, 999))])
    r = cli(cur, "--baseline", tmp_path / "baselines", "--report", "json", "--out", tmp_path / "out")
    assert r.returncode == 0, r.stdout + r.stderr
    (report,) = (tmp_path / "out").glob("performance_report_*.json")
    (search,) = json.loads(report.read_text())["regressions"]
    assert search["baseline_runs"] == 4 and search["baseline_count"] == 6000
    assert "4 baseline runs" in search["message"]


def test_a_baseline_folder_that_holds_the_run_gives_the_others(tmp_path: Path) -> None:
    """CI's artifacts folder holds the run just made too: it is left out of its own baseline, and a run
    the arguments name twice counts once."""
    runs = history_runs(tmp_path / "artifacts", [200.0] * 4)
    r = cli(
        runs[-1],
        "--baseline",
        tmp_path / "artifacts",
        f"{runs[0]}/",
        "--report",
        "json",
        "--out",
        tmp_path / "out",
    )
    assert r.returncode == 0, r.stdout + r.stderr
    (report,) = (tmp_path / "out").glob("performance_report_*.json")
    compared = {c["entry"]: c for c in json.loads(report.read_text())["regressions"]}
    search = compared["GET /api/evidence/search"]
    assert search["baseline_runs"] == 3
    assert search["baseline_count"] == 3 * search["current_count"]


@pytest.mark.parametrize(
    ("baseline", "message"),
    [
        ("{run}/", "is the run being analysed: give --baseline an earlier run"),
        # the first run CI makes, with the artifacts folder it was written into as the baseline
        ("{tmp}/artifacts", "holds no run but the one being analysed: give --baseline an earlier run"),
    ],
)
def test_a_run_is_not_its_own_baseline(tmp_path: Path, baseline: str, message: str) -> None:
    (run,) = history_runs(tmp_path / "artifacts", [200.0])
    r = cli(run, "--baseline", baseline.format(tmp=tmp_path, run=run), "--report", "none")
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
