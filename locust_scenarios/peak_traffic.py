"""PeakTrafficScenario: the morning rush and the deadline crunch of the original suite."""

from __future__ import annotations

from locust import between, tag, task

from locust_scenarios import ApiUser, attempt, dashboards, evidence, reports


class PeakTrafficScenario(ApiUser):
    """The two peaks of a compliance team's week, as the original suite modelled them.

    The morning rush (weight 3: it happens every day, to everyone) opens the dashboard
    `GET /api/users/dashboard`, the first page of evidence `GET /api/evidence` and the compliance
    status `GET /api/compliance/status` in a row, as a team starting its day does. The deadline crunch
    (weight 1) starts an urgent report `POST /api/reports/generate` with `priority: urgent` and uploads
    `uploads_per_crunch` pieces of evidence `POST /api/evidence` right after, as a team does the day
    before an audit. The report is not waited for here (ReportingUser measures that); its acceptance is.
    Each page and upload is attempted whatever happened to the one before.
    """

    wait_time = between(0.5, 2)

    uploads_per_crunch: int = 3
    """Evidence uploads in one deadline crunch."""

    @tag("read", "peak")
    @task(3)
    def morning_rush(self) -> None:
        attempt(dashboards.user_dashboard, self)
        attempt(evidence.list_page, self)
        attempt(dashboards.compliance_status, self)

    @tag("write", "report", "peak")
    @task(1)
    def deadline_crunch(self) -> None:
        attempt(reports.start_report, self, priority="urgent")
        for _ in range(self.uploads_per_crunch):
            attempt(evidence.create, self)
