"""Locustfiles the tests write out: a journey of one's own, as the README's users write them."""

MINE = """
from locust import constant, task
from locust_scenarios import ApiUser, dashboards


class MineUser(ApiUser):
    wait_time = constant(0.2)

    @task
    def status(self):
        dashboards.compliance_status(self)
"""
"""Imports `ApiUser` and a step, not the shape class."""
