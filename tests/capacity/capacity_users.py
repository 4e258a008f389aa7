"""Journeys for the capacity tests, written as a user of the library writes them (public imports)."""

from locust import task

from locust_scenarios import ApiUser, assistant, dashboards


class ProfileLookupJourney(ApiUser):
    """One request per iteration (`GET /api/users/profile`), so the backend's known capacity in
    requests per second is also the journey's capacity in iterations per second."""

    @task
    def look_up_profile(self) -> None:
        dashboards.profile(self)


class AskAssistantJourney(ApiUser):
    """A journey with an AI step: the profile, then a question answered as a token stream (SSE)."""

    @task
    def ask(self) -> None:
        dashboards.profile(self)
        assistant.ask_sse(self, "Which controls does this evidence cover?")
