"""Report jobs and exports: start a report, wait for it, download it; export data."""

from __future__ import annotations

import time
from typing import Any

import gevent

from compliance_loadtest.steps.base import StepFailed, required

JOB_REQUEST_TYPE = "JOB"
"""Request type of the end-to-end report measure (start to downloadable), one entry per report type."""


class ReportJobFailed(Exception):
    """A report job failed, or did not complete within `--report-timeout`."""


def start_report(user: Any, *, priority: str = "normal") -> str:
    """`POST /api/reports/generate` (202); the job's `task_id`. The job is not waited for."""
    payload = user.api.report_payload(user.rng, priority=priority)
    body = required(user, user.call("POST", "reports.generate", json=payload), "start report")
    return str(body["task_id"])


def run_report(
    user: Any,
    payload: dict[str, Any] | None = None,
    *,
    first_poll_s: float = 0.25,
    max_poll_s: float = 2.0,
) -> None:
    """Start a report job, poll its status with growing pauses until it completes or `--report-timeout`
    runs out, download it. The time from start to downloadable is the `JOB` entry
    `report ready: <report_type>`; a failed or late job is a failure there, with a message."""
    payload = payload or user.api.report_payload(user.rng)
    started = time.perf_counter()
    job = required(user, user.call("POST", "reports.generate", json=payload), "start report")
    task_id = str(job["task_id"])
    error = _wait_for(user, task_id, first_poll_s, max_poll_s)
    if error is None and user.call("GET", "reports.download", ids={"id": task_id}) is None:
        error = f"report {payload['report_type']} completed but its download failed"
    user.request_event.fire(
        request_type=JOB_REQUEST_TYPE,
        name=f"report ready: {payload['report_type']}",
        response_time=(time.perf_counter() - started) * 1000,
        response_length=0,
        exception=ReportJobFailed(error) if error else None,
        context=user.context(),
    )
    if error:
        raise StepFailed(error)


def _wait_for(user: Any, task_id: str, first_poll_s: float, max_poll_s: float) -> str | None:
    """Poll until the job completes; None, or a message saying why it did not."""
    timeout = float(getattr(user.environment.parsed_options, "report_timeout", None) or 60.0)
    deadline = time.monotonic() + timeout
    pause = first_poll_s
    last = "unknown"
    while True:
        gevent.sleep(min(pause, max(0.0, deadline - time.monotonic())))
        status = user.call("GET", "reports.status", ids={"id": task_id})
        if status is not None:
            last = f"{status['status']}, progress {status.get('progress', '?')}"
            if status["status"] == "completed":
                return None
            if status["status"] == "failed":
                return f"report job failed ({status.get('error') or 'no reason given'})"
        if time.monotonic() >= deadline:
            return f"report job not completed within --report-timeout {timeout:g} s (last status: {last})"
        pause = min(pause * 1.5, max_poll_s)


def export(user: Any) -> Any:
    """`POST /api/export` of evidence, assessments or the audit trail, as CSV or JSON."""
    payload = user.api.export_payload(user.rng)
    return required(user, user.call("POST", "export.create", json=payload), "export")
