"""The seed runner's suites ("API Performance", "Memory Testing", ...) and the user classes that carry
each out here: read by the suite runner, which picks classes by category, and by the analysis, which
names the suites a run carried out from the classes that made its requests.

Pure (the standard library only) and separate from `suite/plan.py`, whose package pulls in the suite
runner and psutil: the analysis imports this without them, and without Locust.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["CATEGORIES", "LOAD_TESTING", "TITLE_BY_USER_CLASS", "Category"]


@dataclass(frozen=True)
class Category:
    """One of the seed runner's suites, and the user classes that carry it out here."""

    key: str
    """Short form accepted by --include / --exclude (`api`, `db`, ...)."""
    title: str
    """The seed runner's suite name ("API Performance", ...), also accepted."""
    user_classes: tuple[str, ...]
    """Locust user classes run for this category."""
    load_test: bool = False
    """Run only when load tests are asked for (--load-tests, a profile, or the config), as in the seed."""

    def names(self) -> tuple[str, ...]:
        return (self.key, self.title)


LOAD_TESTING = "Load Testing"
"""The suite a user's own locustfile carries out: its classes belong to no category."""

CATEGORIES: tuple[Category, ...] = (
    Category("api", "API Performance", ("ApiBenchmarkUser",)),
    Category("db", "Database Performance", ("DbBenchmarkUser",)),
    Category(
        "load",
        LOAD_TESTING,
        ("ComplianceUser", "AIAssistantUser", "ReportingUser", "ChatWebSocketUser"),
        load_test=True,
    ),
    Category("memory", "Memory Testing", ("DatabaseStressUser",)),
    Category("concurrency", "Concurrency Testing", ("StressTestUser", "PeakTrafficScenario")),
)

TITLE_BY_USER_CLASS: Mapping[str, str] = {
    name: category.title for category in CATEGORIES for name in category.user_classes
}
"""The suite each shipped user class belongs to, by the class's name."""
