"""ReportingUser: an auditor-facing user generating reports, reading analytics and exporting data."""

from __future__ import annotations

from locust import between, tag, task

from locust_scenarios import ApiUser, dashboards, reports


class ReportingUser(ApiUser):
    """Someone preparing an audit: starts report jobs, waits for them, downloads, reads analytics.

    A report is started with `POST /api/reports/generate` (202 and a `task_id`), its status polled at
    `GET /api/reports/status/[id]` with growing pauses (gevent sleeps, so other users keep running)
    until it completes or `--report-timeout` runs out, then fetched from
    `GET /api/reports/[id]/download` (`reports.run_report`). The time from start to downloadable is its
    own entry (request type `JOB`, `report ready: <type>`); a failed or timed-out job is a failure there
    with a message. Between reports it opens `GET /api/analytics/dashboard` (weight 4: what such a user
    looks at most), runs the heavy `GET /api/analytics/aggregate` (2) and exports data with
    `POST /api/export` (2); reports themselves are rarer (3 of 11) because each one takes long.
    """

    wait_time = between(2, 6)

    first_poll_s: float = 0.25
    """Pause before the first status poll; later pauses grow by half up to `max_poll_s`."""

    max_poll_s: float = 2.0
    """Longest pause between two status polls."""

    @tag("report", "write")
    @task(3)
    def generate_report(self) -> None:
        reports.run_report(self, first_poll_s=self.first_poll_s, max_poll_s=self.max_poll_s)

    @tag("report", "read", "analytics")
    @task(4)
    def analytics_dashboard(self) -> None:
        dashboards.analytics(self)

    @tag("report", "read", "analytics", "db")
    @task(2)
    def analytics_aggregate(self) -> None:
        dashboards.aggregate(self)

    @tag("report", "export")
    @task(2)
    def export_data(self) -> None:
        reports.export(self)
