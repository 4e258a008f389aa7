"""The reference backend's settings: one frozen dataclass, filled from `CGPT_*` env vars and CLI flags.

Every field documents its unit and why its default is what it is. Nothing here reads files or opens
connections; `Settings.from_env()` only parses, and raises `SettingsError` naming the variable.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any


class SettingsError(ValueError):
    """A setting could not be parsed; the message names the variable and the bad value."""


@dataclass(frozen=True)
class RateLimit:
    """At most `requests` per `per_seconds` for one key (a user, or a client IP when unauthenticated)."""

    requests: int
    per_seconds: float

    _UNITS = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0}
    _UNITS |= {"h": 3600.0, "hour": 3600.0}

    @classmethod
    def parse(cls, text: str) -> RateLimit | None:
        """`"100/minute"`, `"20/s"`, `"5/10s"`; empty, `"0"` or `"off"` means no limit."""
        text = text.strip().lower()
        if text in ("", "0", "off", "none"):
            return None
        m = re.fullmatch(r"(\d+)\s*/\s*(\d*\.?\d*)\s*([a-z]+)", text)
        if not m or m.group(3) not in cls._UNITS or int(m.group(1)) <= 0:
            raise SettingsError(
                f"CGPT_RATE_LIMIT: {text!r} is not a rate like '100/minute', '20/s' or '5/10s'"
            )
        count = float(m.group(2)) if m.group(2) else 1.0
        return cls(int(m.group(1)), count * cls._UNITS[m.group(3)])


@dataclass(frozen=True)
class Settings:
    """How the reference backend behaves. Env var `CGPT_<FIELD NAME IN CAPITALS>` sets each field."""

    database_url: str | None = None
    """`postgresql://...` for PostgreSQL (a libpq `options=-csearch_path=S` puts every table in schema
    S); a file path or `sqlite:///path` for SQLite; None for SQLite in a fresh temporary directory.
    Env var: `DATABASE_URL` (or `CGPT_DATABASE_URL`)."""

    jwt_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    """HS256 signing key. Random per process by default, so tokens do not survive a restart."""

    token_ttl_seconds: float = 3600.0
    """Lifetime of an access token. Tests set a second or two to watch one expire."""

    refresh_ttl_seconds: float = 7 * 24 * 3600.0
    """Lifetime of a refresh token."""

    kdf_cost: int = 11
    """scrypt cost as log2(N) (r=8, p=1). 11 costs about 4 ms per hash on a laptop core: a real KDF,
    yet cheap enough that a login load test measures the service, not the KDF. Production would use 14+."""

    llm_first_token_ms: float = 400.0
    """Simulated model: time to the first token, like a hosted LLM's. 0 for throughput work."""

    llm_token_ms: float = 25.0
    """Simulated model: delay between tokens (20-30 ms is typical of hosted models). 0 for throughput."""

    threads: int = 24
    """Worker threads for handlers that touch the database. Each thread holds one connection, so on
    PostgreSQL this is also the most connections one backend opens (the server's default limit is 100,
    shared by every backend and test on the machine)."""

    max_streams_per_user: int = 25
    """Chat streams (SSE and WebSocket questions in flight) one user may hold at once; more answer 429."""

    max_message_chars: int = 8000
    """Longest chat message accepted; longer ones answer 422."""

    report_seconds: float = 3.0
    """How long a report job runs (pending -> running -> completed), in seconds."""

    rate_limit: RateLimit | None = None
    """Off by default. Keyed on the authenticated user, falling back to the client IP (keying on IP
    alone turns every load test from one host into 429s). Env: `CGPT_RATE_LIMIT=100/minute`."""

    faults: tuple[Mapping[str, Any], ...] = ()
    """Fault rules at start, as for `PUT /admin/faults` (see `faults.py`). Env: `CGPT_FAULTS` JSON list."""

    admin: bool = False
    """Serve the loopback-only `/admin/*` endpoints (fault injection, request counts)."""

    max_body_bytes: int = 5 * 1024 * 1024
    """Largest request body; larger answer 413, from Content-Length or the streamed size."""

    max_page_size: int = 100
    """Largest `page_size` of list and search routes; larger answer 422."""

    max_bulk_items: int = 1000
    """Largest bulk create / bulk update; larger answer 422."""

    access_log: bool = False
    """uvicorn's access log; off by default because it costs throughput under load."""

    demo_data: bool = False
    """Seed a demo organisation at start (see `seed.py` for the demo user and password)."""

    demo_evidence: int = 500
    """Evidence rows of the demo organisation."""

    capacity_slots: int = 0
    """Off (0) by default. With N > 0, at most N requests are served at once, each holding its slot
    for `service_ms` before it is handled; the others queue. The backend then has a known capacity,
    N / (service_ms / 1000) requests per second (plus each handler's own few milliseconds), so a
    capacity search has a true knee to find. Env: `CGPT_CAPACITY_SLOTS=4 CGPT_SERVICE_MS=100`."""

    service_ms: float = 0.0
    """Fixed service time of every request while `capacity_slots` is on, in milliseconds."""

    delay_median_ms: float = 0.0
    """Off (0) by default. With M > 0 every HTTP request but `/ready` (what launchers wait on) and
    `/admin/*` first waits a random time: lognormal with median M ms and log-sigma `delay_sigma`, from
    a generator seeded with `delay_seed`. Latency then has a known shape that a setting scales, so a
    regression check has a true slowdown to find: `CGPT_DELAY_MEDIAN_MS=55` is 10% slower at every
    percentile than 50, and a wider `delay_sigma` moves the tail alone (p95 = M * exp(1.645 * sigma)).
    The wait holds no capacity slot. At most 60000."""

    delay_sigma: float = 0.5
    """Log-sigma of the delay, 0 to 3: 0 is a fixed delay; 0.5 puts p95 at 2.3 times the median, the
    spread of a quiet web service's latency."""

    delay_seed: int = 0
    """Seed of the delay's generator, so two backends with different seeds draw different delays."""

    def __post_init__(self) -> None:
        for name, high in (("delay_median_ms", 60_000.0), ("delay_sigma", 3.0)):
            value = getattr(self, name)
            if not 0.0 <= value <= high:
                raise SettingsError(f"CGPT_{name.upper()}: {value!r} is not a number from 0 to {high:g}")

    def with_overrides(self, **changes: Any) -> Settings:
        """A copy with the given fields changed, skipping None values (unset CLI flags)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from `CGPT_*` variables (and `DATABASE_URL`); unset ones keep their defaults."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            name = "CGPT_" + f.name.upper()
            raw = env.get(name)
            if f.name == "database_url":
                raw = raw or env.get("DATABASE_URL")
            if raw is None or raw == "":
                continue
            values[f.name] = _parse(f.name, name, raw)
        return cls(**values)


def _parse(field_name: str, var: str, raw: str) -> Any:
    kind = {f.name: f.type for f in fields(Settings)}[field_name]
    try:
        if field_name == "rate_limit":
            return RateLimit.parse(raw)
        if field_name == "faults":
            rules = json.loads(raw)
            if isinstance(rules, dict):
                rules = rules.get("faults", [rules])
            if not isinstance(rules, list):
                raise SettingsError(f"{var}: expected a JSON list of fault rules")
            return tuple(rules)
        if kind == "bool":
            low = raw.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise SettingsError(f"{var}: {raw!r} is not a boolean (1/0, true/false)")
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        return raw
    except json.JSONDecodeError as exc:
        raise SettingsError(f"{var}: not valid JSON ({exc})") from exc
    except ValueError as exc:
        if isinstance(exc, SettingsError):
            raise
        raise SettingsError(f"{var}: {raw!r} is not a valid {kind}") from exc
