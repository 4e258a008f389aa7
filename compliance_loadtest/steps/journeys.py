"""Whole journeys made of the other steps, as the original suite timed them end to end."""

from __future__ import annotations

from typing import Any

from compliance_loadtest.steps import dashboards, evidence, search


def daily_workflow(user: Any) -> None:
    """A compliance manager's routine in one go: dashboard, evidence list, an upload, a search, the
    compliance status."""
    dashboards.user_dashboard(user)
    evidence.list_page(user)
    evidence.create(user)
    search.search(user)
    dashboards.compliance_status(user)
