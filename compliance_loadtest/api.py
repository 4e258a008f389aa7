"""The one place that knows the backend's API: paths, stat names, payloads and response checks.

Every scenario sends through an `Api`, so a backend whose routes differ from the contract in
`COMPLIANCEGPT_API.md` is one mapping away: a YAML/JSON file given to `--api-paths`
(`{"paths": {"evidence.list": "/v2/evidence", ...}}`) or a subclass that overrides `PATHS`.

Keys name operations (`"evidence.get"`), paths are templates whose one placeholder is `{id}`; stat
names replace it with `[id]`, so every report has a bounded number of rows. Payload builders draw from
the caller's seeded Faker and `random.Random`, so a run's data is reproducible with `--scenario-seed`.

This module holds no mutable state shared between users and never sees a password or a token.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

import yaml

from compliance_loadtest.errors import UsageError, did_you_mean

__all__ = [
    "EVIDENCE_STATUSES",
    "EVIDENCE_TYPES",
    "FRAMEWORKS",
    "Api",
    "ApiPathsError",
    "Route",
    "api_for",
    "quoted_keys",
]

EVIDENCE_TYPES = ("document", "screenshot", "configuration", "audit_log", "policy", "log_file", "certificate")
EVIDENCE_STATUSES = ("collected", "pending", "reviewed", "approved", "rejected")
FRAMEWORKS = ("SOC2", "ISO27001", "GDPR", "HIPAA", "PCIDSS")
CONTROL_CODES = (
    "ISO27001.A.9.2.3",
    "ISO27001.A.12.4.1",
    "ISO27001.A.8.1.1",
    "SOC2.CC6.1",
    "SOC2.CC7.2",
    "GDPR.Art32",
    "GDPR.Art30",
    "HIPAA.164.312",
    "PCIDSS.10.2",
)
SOURCES = ("manual_upload", "aws_config", "github", "okta", "jira", "google_workspace")
INDUSTRIES = ("technology", "healthcare", "finance", "retail", "manufacturing", "education")
REPORT_TYPES = ("gap_analysis", "readiness_assessment", "evidence_summary")
REPORT_FORMATS = ("pdf", "html", "json", "csv")
SEARCH_TERMS = ("security", "access", "policy", "encryption", "audit", "backup", "password", "incident")

SERIES = ["evidence_created", "evidence_updated", "evidence_approved", "assessments_completed", "activity"]
GROUPINGS = (["status"], ["evidence_type"], ["framework"], ["status", "evidence_type"], ["month"])

_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def quoted_keys(fields: Iterable[str]) -> tuple[bytes, ...]:
    """`("id", "usage.completion_tokens")` -> `(b'"id"', b'"completion_tokens"')`: how each field's key
    appears in a JSON body (a dotted field by its last part)."""
    return tuple(f'"{field.rsplit(".", 1)[-1]}"'.encode() for field in fields)


class Route(NamedTuple):
    """What the request path needs to know about one operation."""

    template: str
    name: str
    fixed: bool
    expected: tuple[int, ...]
    required: tuple[str, ...]
    required_set: frozenset[str]
    required_keys: tuple[bytes, ...]
    """Each required field's last name as it appears quoted in a JSON body, for checks without parsing."""
    open: bool
    """Sent without the bearer token, and never answered by refreshing it (login, health, ...)."""


def _unknown_key(key: str, known: Iterable[str]) -> str:
    """What a mistyped endpoint key gets told: the closest key, then every key."""
    names = sorted(known)
    return f"unknown endpoint key {key!r}{did_you_mean(key, names)}; known keys: {', '.join(names)}"


class _Routes(dict[str, Route]):
    def __missing__(self, key: str) -> Route:
        raise KeyError(_unknown_key(key, self))


class ApiPathsError(UsageError):
    """An `--api-paths` mapping that cannot be used; the message names the file and the key."""


class Api:
    """The backend's endpoints under stable keys, with payload builders and response checks.

    Subclass and override `PATHS` (all of it, or a few keys merged with `{**Api.PATHS, ...}`) for a
    backend with other routes, or load a mapping file with `Api.from_file`.
    """

    PATHS: Mapping[str, str] = MappingProxyType(
        {
            "ops.health": "/health",
            "ops.ready": "/ready",
            "auth.register": "/api/auth/register",
            "auth.login": "/api/auth/login",
            "auth.token": "/api/auth/token",
            "auth.refresh": "/api/auth/refresh",
            "users.me": "/api/users/me",
            "users.profile": "/api/users/profile",
            "users.dashboard": "/api/users/dashboard",
            "profiles.create": "/api/business-profiles",
            "profiles.list": "/api/business-profiles",
            "profiles.get": "/api/business-profiles/{id}",
            "profiles.update": "/api/business-profiles/{id}",
            "assessments.create": "/api/assessments",
            "assessments.respond": "/api/assessments/{id}/responses",
            "assessments.complete": "/api/assessments/{id}/complete",
            "frameworks.list": "/api/frameworks",
            "frameworks.controls": "/api/frameworks/{id}/controls",
            "frameworks.recommendations": "/api/frameworks/recommendations/{id}",
            "evidence.create": "/api/evidence",
            "evidence.list": "/api/evidence",
            "evidence.get": "/api/evidence/{id}",
            "evidence.update": "/api/evidence/{id}",
            "evidence.replace": "/api/evidence/{id}",
            "evidence.delete": "/api/evidence/{id}",
            "evidence.search": "/api/evidence/search",
            "evidence.stats": "/api/evidence/stats",
            "evidence.bulk_create": "/api/evidence/bulk",
            "evidence.bulk_update": "/api/evidence/bulk-update",
            "compliance.status": "/api/compliance/status",
            "chat.conversations": "/api/chat/conversations",
            "chat.messages": "/api/chat/conversations/{id}/messages",
            "chat.send": "/api/chat/send",
            "chat.stream": "/api/chat/stream",
            "ws.chat": "/ws/chat",
            "reports.generate": "/api/reports/generate",
            "reports.status": "/api/reports/status/{id}",
            "reports.download": "/api/reports/{id}/download",
            "analytics.dashboard": "/api/analytics/dashboard",
            "analytics.aggregate": "/api/analytics/aggregate",
            "export.create": "/api/export",
        }
    )
    """Operation key -> path template (`{id}` where the operation names one resource)."""

    EXPECTED_STATUS: Mapping[str, tuple[int, ...]] = MappingProxyType(
        {
            "auth.register": (201,),
            "profiles.create": (201,),
            "assessments.create": (201,),
            "evidence.create": (201,),
            "evidence.delete": (204,),
            "evidence.bulk_create": (201,),
            "chat.conversations": (201,),
            "reports.generate": (202,),
        }
    )
    """Success status per key when the caller does not say; 200 otherwise."""

    REQUIRED_FIELDS: Mapping[str, tuple[str, ...]] = MappingProxyType(
        {
            "auth.register": ("user_id", "email"),
            "auth.login": ("access_token", "refresh_token"),
            "auth.refresh": ("access_token",),
            "users.me": ("id", "email"),
            "users.dashboard": ("compliance_status", "quick_stats"),
            "profiles.create": ("id",),
            "assessments.create": ("session_id", "status"),
            "assessments.complete": ("status",),
            "evidence.create": ("id", "status"),
            "evidence.list": ("results", "total_count", "page", "total_pages"),
            "evidence.get": ("id", "title", "status"),
            "evidence.update": ("id", "status"),
            "evidence.search": ("results", "total_count"),
            "evidence.stats": ("total_evidence_items", "by_status"),
            "evidence.bulk_create": ("created_count", "ids"),
            "evidence.bulk_update": ("updated_count", "failed_count"),
            "compliance.status": ("overall_score", "framework_scores"),
            "chat.conversations": ("conversation_id",),
            "chat.send": ("conversation_id", "response"),
            "reports.generate": ("task_id",),
            "reports.status": ("status",),
            "analytics.dashboard": (),
            "export.create": (),
        }
    )
    """Fields every successful JSON answer of a key must carry (top level)."""

    OPEN_KEYS: frozenset[str] = frozenset(
        {"auth.register", "auth.login", "auth.token", "auth.refresh", "ops.health", "ops.ready"}
    )
    """Keys whose requests carry no bearer token, and never trigger a token refresh."""

    MAX_PAGE_SIZE = 100
    """Largest `page_size` the contract's list endpoints accept."""

    def __init__(self, paths: Mapping[str, str] | None = None) -> None:
        merged = dict(self.PATHS)
        if paths:
            merged.update(paths)
        self._paths: dict[str, str] = merged
        # Everything a request needs about its key, worked out once: the hot path is one lookup.
        self.routes: Mapping[str, Route] = _Routes(
            {
                key: Route(
                    template=p,
                    name=_PLACEHOLDER.sub("[id]", p),
                    fixed="{" not in p,
                    expected=tuple(self.expected_status(key)),
                    required=tuple(self.required_fields(key)),
                    required_set=frozenset(self.required_fields(key)),
                    required_keys=quoted_keys(self.required_fields(key)),
                    open=key in self.OPEN_KEYS,
                )
                for key, p in merged.items()
            }
        )
        """Key -> `Route`; an unknown key raises a KeyError that lists the known ones."""

    # --- construction -------------------------------------------------------------------------

    @classmethod
    def from_file(cls, path: str | Path) -> Api:
        """An `Api` whose paths are overridden by a YAML or JSON mapping file.

        The file holds `{"paths": {key: path}}` (or the key -> path mapping itself). Each key must be
        one of `PATHS` and keep the original's placeholders, so every scenario still fills them.
        """
        file = Path(path)
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ApiPathsError(f"--api-paths {file}: cannot read: {exc.strerror or exc}") from None
        try:
            data = json.loads(text) if file.suffix.lower() == ".json" else yaml.safe_load(text)
        except (ValueError, yaml.YAMLError) as exc:
            raise ApiPathsError(f"--api-paths {file}: not valid JSON or YAML: {exc}") from None
        return cls(cls.validate_paths(data, source=str(file)))

    @classmethod
    def validate_paths(cls, data: Any, *, source: str) -> dict[str, str]:
        """Check a mapping of overrides against `PATHS`; raise `ApiPathsError` naming the bad key."""
        if isinstance(data, Mapping) and "paths" in data:
            extra = sorted(set(data) - {"paths"})
            if extra:
                raise ApiPathsError(
                    f"--api-paths {source}: unknown top-level key {extra[0]!r} (expected 'paths')"
                )
            data = data["paths"]
        if not isinstance(data, Mapping):
            raise ApiPathsError(f"--api-paths {source}: expected a mapping of endpoint keys to paths")
        overrides: dict[str, str] = {}
        for key, value in data.items():
            if key not in cls.PATHS:
                raise ApiPathsError(f"--api-paths {source}: {_unknown_key(key, cls.PATHS)}")
            if not isinstance(value, str) or not value.startswith("/"):
                raise ApiPathsError(
                    f"--api-paths {source}: key {key!r}: path must be a string starting with '/'"
                )
            want = set(_PLACEHOLDER.findall(cls.PATHS[key]))
            got = set(_PLACEHOLDER.findall(value))
            if want != got:
                expected = ", ".join("{" + p + "}" for p in sorted(want)) or "no placeholder"
                raise ApiPathsError(
                    f"--api-paths {source}: key {key!r}: path {value!r} must contain {expected}"
                )
            overrides[key] = value
        return overrides

    # --- paths and names ----------------------------------------------------------------------

    def route(self, key: str) -> Route:
        """Path template, stat name, success statuses and required fields of an operation."""
        return self.routes[key]

    def path(self, key: str, **ids: Any) -> str:
        """The real URL path of an operation, ids filled in."""
        route = self.route(key)
        return route.template if route.fixed else route.template.format(**ids)

    def name(self, key: str) -> str:
        """The stable stat name of an operation: its path with ids grouped as `[id]`."""
        return self.route(key).name

    def keys(self) -> Iterable[str]:
        return self._paths.keys()

    # --- response checks ----------------------------------------------------------------------

    def expected_status(self, key: str) -> tuple[int, ...]:
        return self.EXPECTED_STATUS.get(key, (200,))

    def required_fields(self, key: str) -> tuple[str, ...]:
        return self.REQUIRED_FIELDS.get(key, ())

    @staticmethod
    def missing_fields(body: Any, fields: Iterable[str]) -> list[str]:
        """Required fields absent from a JSON object answer; dotted names reach into nested objects."""
        missing = []
        for f in fields:
            node = body
            for part in f.split("."):
                if not isinstance(node, dict) or part not in node:
                    missing.append(f)
                    break
                node = node[part]
        return missing

    # --- payload builders ---------------------------------------------------------------------

    @staticmethod
    def register_payload(fake: Any, email: str, password: str) -> dict[str, Any]:
        return {
            "email": email,
            "password": password,
            "full_name": fake.name(),
            "organization_name": fake.company(),
        }

    @staticmethod
    def login_payload(email: str, password: str) -> dict[str, Any]:
        return {"email": email, "password": password}

    @staticmethod
    def business_profile_payload(fake: Any, rng: random.Random) -> dict[str, Any]:
        return {
            "company_name": fake.company(),
            "industry": rng.choice(INDUSTRIES),
            "employee_count": rng.choice((12, 45, 180, 750, 3200)),
            "revenue_range": rng.choice(("<1M", "1M-10M", "10M-50M", "50M-250M", ">250M")),
            "location": fake.country(),
            "description": fake.catch_phrase(),
            "data_processing": {
                "processes_personal_data": rng.random() < 0.8,
                "processes_health_data": rng.random() < 0.2,
                "processes_payment_data": rng.random() < 0.4,
                "data_locations": rng.sample(["EU", "US", "UK", "APAC"], k=rng.randint(1, 3)),
            },
        }

    @staticmethod
    def assessment_payload(profile_id: str, rng: random.Random) -> dict[str, Any]:
        return {
            "business_profile_id": profile_id,
            "assessment_type": "compliance_scoping",
            "frameworks_of_interest": rng.sample(list(FRAMEWORKS), k=rng.randint(1, 3)),
        }

    @staticmethod
    def assessment_response_payload(fake: Any, rng: random.Random, question_no: int) -> dict[str, Any]:
        return {
            "question_id": f"q{question_no}",
            "response": rng.choice(("yes", "no", "partially", "not_applicable")),
            "details": {"comment": fake.sentence(nb_words=8)},
            "move_to_next_stage": True,
        }

    @staticmethod
    def evidence_payload(fake: Any, rng: random.Random) -> dict[str, Any]:
        return {
            "title": f"{rng.choice(SEARCH_TERMS).capitalize()} {fake.bs()}",
            "description": fake.paragraph(nb_sentences=3),
            "evidence_type": rng.choice(EVIDENCE_TYPES),
            "source": rng.choice(SOURCES),
            "framework_mappings": rng.sample(CONTROL_CODES, k=rng.randint(1, 3)),
            "tags": rng.sample(list(SEARCH_TERMS), k=rng.randint(1, 3)),
            "metadata": {"collected_by": "load-test", "version": rng.randint(1, 5)},
            "quality_score": round(rng.uniform(0.4, 1.0), 2),
        }

    @classmethod
    def bulk_evidence_payload(cls, fake: Any, rng: random.Random, count: int) -> dict[str, Any]:
        return {"items": [cls.evidence_payload(fake, rng) for _ in range(count)]}

    @staticmethod
    def bulk_update_payload(ids: Iterable[str], status: str, reason: str) -> dict[str, Any]:
        return {"evidence_ids": list(ids), "status": status, "reason": reason}

    @staticmethod
    def evidence_update_payload(fake: Any, rng: random.Random) -> dict[str, Any]:
        return {"status": rng.choice(EVIDENCE_STATUSES), "notes": fake.sentence(nb_words=10)}

    @staticmethod
    def evidence_list_params(
        rng: random.Random, *, page: int = 1, page_size: int = 20, filtered: bool = False
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"page": page, "page_size": page_size}
        if filtered:
            choice = rng.randrange(3)
            if choice == 0:
                params["status"] = rng.choice(EVIDENCE_STATUSES)
            elif choice == 1:
                params["evidence_type"] = rng.choice(EVIDENCE_TYPES)
            else:
                params["framework"] = rng.choice(FRAMEWORKS)
            params["sort_by"] = rng.choice(("created_at", "updated_at", "title"))
            params["sort_order"] = rng.choice(("asc", "desc"))
        return params

    @staticmethod
    def search_params(rng: random.Random, *, page_size: int = 20) -> dict[str, Any]:
        params: dict[str, Any] = {"q": rng.choice(SEARCH_TERMS), "page": 1, "page_size": page_size}
        if rng.random() < 0.5:
            params["evidence_type"] = rng.choice(EVIDENCE_TYPES)
        return params

    @staticmethod
    def report_payload(rng: random.Random, *, priority: str = "normal") -> dict[str, Any]:
        return {
            "report_type": rng.choice(REPORT_TYPES),
            "frameworks": rng.sample(list(FRAMEWORKS), k=rng.randint(1, 2)),
            "format": rng.choice(REPORT_FORMATS),
            "include_sections": ["summary", "gaps", "evidence"],
            "filters": {"date_range": rng.choice(("30d", "90d", "1y"))},
            "priority": priority,
        }

    @staticmethod
    def analytics_params(rng: random.Random) -> dict[str, Any]:
        return {
            "time_range": rng.choice(("7d", "30d", "90d", "1y")),
            "metrics": rng.sample(SERIES, k=2),
        }

    @staticmethod
    def aggregate_params(rng: random.Random) -> dict[str, Any]:
        return {
            "metrics": ["count", "avg_quality_score"],
            "group_by": rng.choice(GROUPINGS),
            "time_range": rng.choice(("30d", "90d", "1y")),
        }

    @staticmethod
    def export_payload(rng: random.Random) -> dict[str, Any]:
        return {
            "data_type": rng.choice(("evidence", "assessments", "audit_trail")),
            "format": rng.choice(("csv", "json")),
            "date_range": {"start": f"2026-{rng.randint(1, 6):02d}-01T00:00:00+00:00"},
        }

    @staticmethod
    def chat_payload(fake: Any, rng: random.Random, conversation_id: str | None = None) -> dict[str, Any]:
        question = rng.choice(
            (
                "Which evidence do we still need for SOC 2 CC6.1?",
                "Summarise our ISO 27001 access control gaps.",
                "How do we meet GDPR Article 32 with our current evidence?",
                "What should we review before the HIPAA audit?",
            )
        )
        payload: dict[str, Any] = {"message": f"{question} {fake.sentence(nb_words=6)}", "context": {}}
        if conversation_id:
            payload["conversation_id"] = conversation_id
        return payload


def api_for(environment: Any, api_class: type[Api] = Api) -> Api:
    """The `Api` of a run (a Locust environment): `--api-paths` applied, built once per environment,
    class and paths file; raises `ApiPathsError` for a mapping that cannot be used.

    Keyed by the file too: a worker builds one at `init`, before the master's options (and its
    `--api-paths`) reach it with the test's start."""
    cache: dict[tuple[type[Api], str], Api] = environment.__dict__.setdefault("_cgpt_apis", {})
    paths_file = str(getattr(environment.parsed_options, "api_paths", None) or "")
    api = cache.get((api_class, paths_file))
    if api is None:
        api = api_class.from_file(paths_file) if paths_file else api_class()
        cache[(api_class, paths_file)] = api
    return api
