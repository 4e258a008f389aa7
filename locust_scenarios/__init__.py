"""Composable Locust scenarios for a ComplianceGPT-style compliance SaaS backend: the public API.

`locust -f locust_scenarios` runs the shipped users (one per file in this folder). A locustfile of
your own assembles journeys from the same pieces, importing only from here:

    from locust import between, task
    from locust_scenarios import ApiUser, assistant, evidence, search

    class AuditPrepUser(ApiUser):
        wait_time = between(1, 3)

        @task
        def upload_find_ask(self):
            item = evidence.create(self)
            search.must_find(self, item)
            assistant.ask_sse(self, f"Which controls does '{item.title}' cover?")

Importing this package installs the library's Locust plugin once per process (`install`): its
options (`--run-dir`, `--load-profile`, `--scenario-seed`, ...) and listeners (the exact record, the
run folder, the embedded backend, the safety guard's checks), whatever you import from it.
"""

from __future__ import annotations

from compliance_loadtest import db, locustfile_path
from compliance_loadtest.api import EVIDENCE_STATUSES, EVIDENCE_TYPES, FRAMEWORKS, Api, ApiPathsError, Route
from compliance_loadtest.benchmark import BenchmarkUserMixin, RoundFailed, rss_growth, target_pid
from compliance_loadtest.db import timed_query
from compliance_loadtest.plugin import install
from compliance_loadtest.plugin.embedded import EmbeddedBackend, database_url_for, embedded_backend
from compliance_loadtest.plugin.guard import install_guard
from compliance_loadtest.plugin.shape import LoadProfileShape
from compliance_loadtest.session import ApiSession
from compliance_loadtest.steps import (
    assistant,
    dashboards,
    evidence,
    journeys,
    onboarding,
    reports,
    search,
    sql,
    ws_chat,
)
from compliance_loadtest.steps.base import StepFailed, attempt, required
from compliance_loadtest.steps.evidence import Evidence
from compliance_loadtest.streaming import SseReader, StreamError, TokenStream, fire_llm_measures
from compliance_loadtest.user import ApiUser
from compliance_loadtest.workspace import Workspace

__all__ = [
    "EVIDENCE_STATUSES",
    "EVIDENCE_TYPES",
    "FRAMEWORKS",
    "Api",
    "ApiPathsError",
    "ApiSession",
    "ApiUser",
    "BenchmarkUserMixin",
    "EmbeddedBackend",
    "Evidence",
    "LoadProfileShape",
    "RoundFailed",
    "Route",
    "SseReader",
    "StepFailed",
    "StreamError",
    "TokenStream",
    "Workspace",
    "assistant",
    "attempt",
    "dashboards",
    "database_url_for",
    "db",
    "embedded_backend",
    "evidence",
    "fire_llm_measures",
    "install",
    "install_guard",
    "journeys",
    "locustfile_path",
    "onboarding",
    "reports",
    "required",
    "rss_growth",
    "search",
    "sql",
    "target_pid",
    "timed_query",
    "ws_chat",
]

install()
