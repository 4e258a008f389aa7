"""Composable Locust scenarios for a ComplianceGPT-style compliance SaaS backend.

Run `locust -f locust_scenarios` from the repository root, or `locust -f "$(python -c 'import
locust_scenarios; print(locust_scenarios.locustfile_path())')"` from anywhere once installed.

Locust imports every file below this folder whose name does not start with `_` as a top-level
module named after the file. Those files hold one user class each and import shared code only from
the underscore modules, by their dotted name (`from locust_scenarios._api import ...`), so nothing is
imported twice. This `__init__` must stay free of side effects.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["locustfile_path"]


def locustfile_path() -> str:
    """The folder to give `locust -f`, wherever the package is installed."""
    return str(Path(__file__).resolve().parent)
