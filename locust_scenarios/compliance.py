"""ComplianceUser: a compliance manager onboarding an organisation, then working on its evidence."""

from __future__ import annotations

from locust import between, tag, task

from locust_scenarios import ApiUser, dashboards, evidence, onboarding, search


class ComplianceUser(ApiUser):
    """A compliance manager: onboards once, then spends the day on dashboards and evidence.

    On start it registers an organisation, logs in and walks the onboarding in order (business profile
    `POST /api/business-profiles`, assessment `POST /api/assessments`, three answers
    `POST /api/assessments/[id]/responses`, completion `POST /api/assessments/[id]/complete`, framework
    recommendations `GET /api/frameworks/recommendations/[id]`). Its daily tasks follow how such a
    user spends time: the dashboard and evidence lists are opened most (weights 10 and 8), single
    evidence is viewed more often than it is created or changed (6 vs 3 and 2), searches and filtered
    lists sit in between (4 and 5), and the statistics pages are glanced at now and then (2 and 3).
    Onboarding of a further organisation is rare (1).
    """

    wait_time = between(1, 4)

    def on_start(self) -> None:
        super().on_start()
        self.set_tags("onboarding")
        onboarding.onboard(self)

    @tag("onboarding", "write")
    @task(1)
    def onboard_another_organisation(self) -> None:
        onboarding.onboard_new_organisation(self)

    @tag("read", "dashboard")
    @task(10)
    def dashboard(self) -> None:
        dashboards.user_dashboard(self)

    @tag("read")
    @task(8)
    def list_evidence(self) -> None:
        evidence.list_page(self)

    @tag("read")
    @task(5)
    def filter_evidence(self) -> None:
        evidence.list_page(self, filtered=True)

    @tag("read")
    @task(6)
    def view_evidence(self) -> None:
        evidence.view(self)

    @tag("write")
    @task(3)
    def create_evidence(self) -> None:
        evidence.create(self)

    @tag("write")
    @task(2)
    def update_evidence_status(self) -> None:
        evidence.update_status(self)

    @tag("read", "search")
    @task(4)
    def search_evidence(self) -> None:
        search.search(self)

    @tag("read", "stats")
    @task(2)
    def evidence_stats(self) -> None:
        evidence.stats(self)

    @tag("read", "stats")
    @task(3)
    def compliance_status(self) -> None:
        dashboards.compliance_status(self)
