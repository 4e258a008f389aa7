"""The one-command suite run (`compliance-loadtest`): backend, Locust master and workers, analysis."""

from compliance_loadtest.suite.run import main

__all__ = ["main"]
