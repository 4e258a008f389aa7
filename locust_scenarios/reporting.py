"""ReportingUser: an auditor-facing user generating reports, reading analytics and exporting data."""

from __future__ import annotations

import time
from typing import Any

import gevent
from locust import between, tag, task

from locust_scenarios import ApiUser

JOB_REQUEST_TYPE = "JOB"
"""Request type of the end-to-end report measure (start to downloadable), one row per report type."""


class ReportJobFailed(Exception):
    """A report job failed, or did not complete within `--report-timeout`."""


class ReportingUser(ApiUser):
    """Someone preparing an audit: starts report jobs, waits for them, downloads, reads analytics.

    A report is started with `POST /api/reports/generate` (202 and a `task_id`), its status polled at
    `GET /api/reports/status/[id]` with growing pauses (gevent sleeps, so other users keep running)
    until it completes or `--report-timeout` runs out, then fetched from
    `GET /api/reports/[id]/download`. The time from start to downloadable is its own entry (request
    type `JOB`, `report ready: <type>`); a failed or timed-out job is a failure there with a message.
    Between reports it opens `GET /api/analytics/dashboard` (weight 4: what such a user looks at most),
    runs the heavy `GET /api/analytics/aggregate` (2) and exports data with `POST /api/export` (2);
    reports themselves are rarer (3 of 11) because each one takes long.
    """

    wait_time = between(2, 6)

    first_poll_s: float = 0.25
    """Pause before the first status poll; later pauses grow by half up to `max_poll_s`."""

    max_poll_s: float = 2.0
    """Longest pause between two status polls."""

    @tag("report", "write")
    @task(3)
    def generate_report(self) -> None:
        payload = self.api.report_payload(self.rng)
        self.run_report(payload)

    def run_report(self, payload: dict[str, Any]) -> bool:
        """Start a report job, wait for it within the timeout, download it. True when downloaded."""
        started = time.perf_counter()
        job_name = f"report ready: {payload['report_type']}"
        job = self.call("POST", "reports.generate", json=payload)
        if job is None:
            return False
        task_id = str(job["task_id"])
        error = self._wait_for(task_id)
        if error is None and self.call("GET", "reports.download", ids={"id": task_id}) is None:
            error = f"report {payload['report_type']} completed but its download failed"
        self.environment.events.request.fire(
            request_type=JOB_REQUEST_TYPE,
            name=job_name,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=0,
            exception=ReportJobFailed(error) if error else None,
            context=self.context(),
        )
        return error is None

    def _wait_for(self, task_id: str) -> str | None:
        """Poll until the job completes; None, or a message saying why it did not."""
        timeout = float(getattr(self.environment.parsed_options, "report_timeout", None) or 60.0)
        deadline = time.monotonic() + timeout
        pause = self.first_poll_s
        last = "unknown"
        while True:
            gevent.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            status = self.call("GET", "reports.status", ids={"id": task_id})
            if status is not None:
                last = f"{status['status']}, progress {status.get('progress', '?')}"
                if status["status"] == "completed":
                    return None
                if status["status"] == "failed":
                    return f"report job failed ({status.get('error') or 'no reason given'})"
            if time.monotonic() >= deadline:
                return f"report job not completed within --report-timeout {timeout:g} s (last status: {last})"
            pause = min(pause * 1.5, self.max_poll_s)

    @tag("report", "read", "analytics")
    @task(4)
    def analytics_dashboard(self) -> None:
        self.call("GET", "analytics.dashboard", params=self.api.analytics_params(self.rng))

    @tag("report", "read", "analytics", "db")
    @task(2)
    def analytics_aggregate(self) -> None:
        self.call("GET", "analytics.aggregate", params=self.api.aggregate_params(self.rng))

    @tag("report", "export")
    @task(2)
    def export_data(self) -> None:
        self.call("POST", "export.create", json=self.api.export_payload(self.rng))
