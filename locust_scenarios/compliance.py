"""ComplianceUser: a compliance manager onboarding an organisation, then working on its evidence."""

from __future__ import annotations

from collections.abc import Iterable

from locust import between, tag, task

from locust_scenarios import ApiUser

ASSESSMENT_QUESTIONS = 3


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

    def __init__(self, environment: object) -> None:
        super().__init__(environment)
        self.profile_id: str | None = None
        self.evidence_ids: list[str] = []

    def on_start(self) -> None:
        super().on_start()
        self._task_tags = "onboarding"
        self.onboard()

    # --- onboarding ---------------------------------------------------------------------------

    def onboard(self) -> bool:
        """Business profile, assessment with answers, completion, recommendations, in that order."""
        profile = self.call(
            "POST", "profiles.create", json=self.api.business_profile_payload(self.fake, self.rng)
        )
        if profile is None:
            return False
        self.profile_id = str(profile["id"])
        session = self.call(
            "POST", "assessments.create", json=self.api.assessment_payload(self.profile_id, self.rng)
        )
        if session is None:
            return False
        ids = {"id": session["session_id"]}
        for question in range(1, ASSESSMENT_QUESTIONS + 1):
            payload = self.api.assessment_response_payload(self.fake, self.rng, question)
            if self.call("POST", "assessments.respond", ids=ids, json=payload) is None:
                return False
        done = self.call("POST", "assessments.complete", ids=ids, fields=("score",))
        if done is None:
            return False
        recommendations = self.call("GET", "frameworks.recommendations", ids={"id": self.profile_id})
        return recommendations is not None

    @tag("onboarding", "write")
    @task(1)
    def onboard_another_organisation(self) -> None:
        """A new customer signs up: fresh account, then the whole onboarding.

        With a shared account (`--login-email`) nothing is registered: the account onboards again.
        """
        if self.shared_account() or not self.register_users:
            self.onboard()
        elif self.register() and self.login(self._email, self._password):
            self.evidence_ids.clear()
            self.onboard()

    # --- daily activities ---------------------------------------------------------------------

    @tag("read", "dashboard")
    @task(10)
    def dashboard(self) -> None:
        self.call("GET", "users.dashboard")

    @tag("read")
    @task(8)
    def list_evidence(self) -> None:
        page = self.call("GET", "evidence.list", params=self.api.evidence_list_params(self.rng))
        if page is not None:
            self._remember(item["id"] for item in page["results"] if "id" in item)

    @tag("read")
    @task(5)
    def filter_evidence(self) -> None:
        self.call("GET", "evidence.list", params=self.api.evidence_list_params(self.rng, filtered=True))

    @tag("read")
    @task(6)
    def view_evidence(self) -> None:
        evidence_id = self._some_evidence()
        if evidence_id:
            self.call("GET", "evidence.get", ids={"id": evidence_id})

    @tag("write")
    @task(3)
    def create_evidence(self) -> None:
        created = self.call("POST", "evidence.create", json=self.api.evidence_payload(self.fake, self.rng))
        if created is not None:
            self._remember([created["id"]])

    @tag("write")
    @task(2)
    def update_evidence_status(self) -> None:
        evidence_id = self._some_evidence()
        if evidence_id:
            payload = self.api.evidence_update_payload(self.fake, self.rng)
            self.call("PATCH", "evidence.update", ids={"id": evidence_id}, json=payload)

    @tag("read", "search")
    @task(4)
    def search_evidence(self) -> None:
        self.call("GET", "evidence.search", params=self.api.search_params(self.rng))

    @tag("read", "stats")
    @task(2)
    def evidence_stats(self) -> None:
        self.call("GET", "evidence.stats")

    @tag("read", "stats")
    @task(3)
    def compliance_status(self) -> None:
        self.call("GET", "compliance.status")

    # --- helpers ------------------------------------------------------------------------------

    def _remember(self, ids: Iterable[object]) -> None:
        for evidence_id in ids:
            if evidence_id not in self.evidence_ids:
                self.evidence_ids.append(str(evidence_id))
        del self.evidence_ids[:-50]  # a bounded working set, like a user's recent items

    def _some_evidence(self) -> str | None:
        """An evidence id of this organisation, creating one if the organisation has none yet."""
        if not self.evidence_ids:
            created = self.call(
                "POST", "evidence.create", json=self.api.evidence_payload(self.fake, self.rng)
            )
            if created is None:
                return None
            self._remember([created["id"]])
        return self.rng.choice(self.evidence_ids)
