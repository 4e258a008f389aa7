"""Steps that read the pages people open most: dashboards, compliance status, analytics, frameworks."""

from __future__ import annotations

from typing import Any

from compliance_loadtest.steps.base import required

READ_PAGES = (
    "users.dashboard",
    "users.me",
    "evidence.list",
    "evidence.stats",
    "compliance.status",
    "frameworks.list",
)
"""The read-only pages `any_page` picks from (API keys)."""


def user_dashboard(user: Any) -> dict[str, Any]:
    """`GET /api/users/dashboard`."""
    return required(user, user.call("GET", "users.dashboard"), "dashboard")


def compliance_status(user: Any) -> dict[str, Any]:
    """`GET /api/compliance/status`."""
    return required(user, user.call("GET", "compliance.status"), "compliance status")


def profile(user: Any) -> dict[str, Any]:
    """`GET /api/users/profile`; fails unless it carries the user's id."""
    body = user.call("GET", "users.profile", check=lambda b: None if b.get("id") else "profile without an id")
    return required(user, body, "profile")


def any_page(user: Any) -> Any:
    """One of `READ_PAGES`, at random, as an integration polling the API does."""
    key = user.rng.choice(READ_PAGES)
    return required(user, user.call("GET", key), f"GET {user.api.name(key)}")


def analytics(user: Any) -> Any:
    """`GET /api/analytics/dashboard` for a random time range and two series."""
    params = user.api.analytics_params(user.rng)
    return required(user, user.call("GET", "analytics.dashboard", params=params), "analytics dashboard")


def aggregate(user: Any) -> Any:
    """`GET /api/analytics/aggregate`: grouped aggregates, a heavy query by design."""
    params = user.api.aggregate_params(user.rng)
    return required(user, user.call("GET", "analytics.aggregate", params=params), "analytics aggregate")
