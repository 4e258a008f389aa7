"""The scheduled workflow runs the suite as docs/suite.md's CI section says: daily and on demand, a
PostgreSQL service, a profile and workers, the last good run as baseline, the run folder kept, the
report on the summary page. (actionlint, in test_linters.py, checks that GitHub can run it.)"""

from __future__ import annotations

from typing import Any

import yaml

from tests.deploy.manifests import ROOT

WORKFLOW = ROOT / ".github" / "workflows" / "performance.yml"


def steps() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    job: dict[str, Any] = workflow["jobs"]["performance"]
    return job, job["steps"]


def test_it_runs_daily_and_on_demand_on_githubs_hosted_runners() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as true
    assert triggers["schedule"][0]["cron"]
    assert set(triggers["workflow_dispatch"]["inputs"]) == {"profile", "time_scale", "workers"}
    job, _ = steps()
    assert job["runs-on"] == "ubuntu-latest" and job["timeout-minutes"] <= 360


def test_it_runs_the_suite_with_workers_a_profile_and_the_last_good_run_as_baseline() -> None:
    job, all_steps = steps()
    assert job["services"]["postgres"]["image"].startswith("postgres:")
    assert "5432:5432" in job["services"]["postgres"]["ports"]
    assert "postgresql://" in job["env"]["CGPT_BACKEND_DATABASE_URL"]
    runs = "\n".join(s.get("run", "") for s in all_steps)
    assert "pip install '.[postgres]'" in runs
    suite = next(s for s in all_steps if "compliance-loadtest" in s.get("run", ""))
    for option in ("--load-profile", "--workers", "--baseline", "--run-dir"):
        assert option in suite["run"], option
    assert "--no-step-summary" not in suite["run"]
    uses = [s.get("uses", "") for s in all_steps]
    assert any(u.startswith("actions/cache/restore@") for u in uses)
    assert any(u.startswith("actions/cache/save@") for u in uses)


def test_the_run_folder_and_a_word_on_the_summary_page_survive_a_failed_run() -> None:
    _, all_steps = steps()
    upload = next(s for s in all_steps if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert upload["if"] == "always()"
    # The analysis appends its Markdown report to $GITHUB_STEP_SUMMARY; a step of the workflow's own says
    # so when no report was written.
    summary = next(s for s in all_steps if "GITHUB_STEP_SUMMARY" in s.get("run", ""))
    assert summary["if"] == "always()" and "performance_report_*.md" in summary["run"]
    # Only a passing run on the default branch becomes the next baseline.
    keep = [s for s in all_steps if s.get("uses", "").startswith("actions/cache/save@")]
    assert keep and all(s["if"].startswith("success() &&") for s in keep)
