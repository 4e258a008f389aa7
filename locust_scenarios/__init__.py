"""Composable Locust scenarios for a ComplianceGPT-style compliance SaaS backend.

Run `locust -f locust_scenarios` from the repository root, or `locust -f "$(python -c 'import
locust_scenarios; print(locust_scenarios.locustfile_path())')"` from anywhere once installed.

Importing this package installs the library's Locust plugin (`compliance_loadtest.plugin.install`):
its options (`--run-dir`, `--load-profile`, `--scenario-seed`, ...) and listeners, once per process.
"""

from __future__ import annotations

from compliance_loadtest import locustfile_path
from compliance_loadtest.plugin import install
from compliance_loadtest.plugin.shape import LoadProfileShape
from compliance_loadtest.user import ApiUser

__all__ = ["ApiUser", "LoadProfileShape", "install", "locustfile_path"]

install()
