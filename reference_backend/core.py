"""What every route module shares: the per-app state, the caller's identity, JSON answers, id checks.

Handlers that touch the database are plain `def` functions (FastAPI runs them in its threadpool, where
each thread holds its own connection); authentication is an `async def` dependency because checking an
HS256 signature is cheaper than a hop to the threadpool.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import OAuth2PasswordBearer
from starlette.responses import Response

from reference_backend.db import Database, new_id, now_iso
from reference_backend.security import TokenError, decode_token
from reference_backend.settings import Settings


class OrgSummaries:
    """Per-organisation summaries derived from evidence (stats, compliance status), reused while the
    organisation's evidence has not changed through this service, for at most `max_age` seconds.

    Every evidence write gives the organisation a new version; a summary computed at an older version
    is recomputed. The version is read before computing, so a write racing a computation makes the
    result stale at once rather than cached as fresh. Rows written behind the service's back (database
    scenarios updating evidence directly, a `seed` run into a live database) show within `max_age`.

    Load runs register an organisation per simulated user, so past `max_entries` summaries the ones
    too old to be served are forgotten, with the versions of organisations left without a summary: the
    cache holds what the last `max_age` seconds computed, not every organisation ever seen."""

    def __init__(self, max_age: float = 1.0, max_entries: int = 1000) -> None:
        self.max_age = max_age
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._issued = itertools.count(1)
        # An organisation without an entry is at version `_floor`: it is raised to the last version
        # issued whenever versions are forgotten, so a summary computed before a forgotten write
        # never matches again.
        self._floor = 0
        self._versions: dict[str, int] = {}
        self._values: dict[tuple[str, str], tuple[int, float, Any]] = {}

    def __len__(self) -> int:
        """Summaries held."""
        return len(self._values)

    @property
    def organisations(self) -> int:
        """Organisations whose version is held."""
        return len(self._versions)

    def bump(self, org_id: str) -> None:
        with self._lock:
            self._versions[org_id] = next(self._issued)
            if len(self._versions) > self.max_entries:
                self._forget_old(time.monotonic())

    def get(self, kind: str, org_id: str, compute: Any) -> Any:
        now = time.monotonic()
        with self._lock:
            version = self._versions.get(org_id, self._floor)
            hit = self._values.get((kind, org_id))
        if hit is not None and hit[0] == version and now - hit[1] < self.max_age:
            return hit[2]
        value = compute()
        with self._lock:
            self._values[(kind, org_id)] = (version, now, value)
            if len(self._values) > self.max_entries:
                self._forget_old(now)
        return value

    def _forget_old(self, now: float) -> None:
        """Drop summaries past `max_age` (all of them if more than `max_entries` are younger), then the
        versions no summary is checked against any more. Called with the lock held."""
        self._values = {k: v for k, v in self._values.items() if now - v[1] < self.max_age}
        if len(self._values) > self.max_entries:
            self._values = {}
        live = {org_id for _, org_id in self._values}
        self._versions = {o: v for o, v in self._versions.items() if o in live}
        self._floor = next(self._issued)


@dataclass
class AppState:
    """Everything a request may need, created once per app by `create_app`."""

    settings: Settings
    db: Database
    faults: Any = None
    counter: Any = None
    limiter: Any = None
    model: Any = None
    reports: Any = None
    active_streams: dict[str, int] = field(default_factory=dict)
    summaries: OrgSummaries = field(default_factory=OrgSummaries)


def state(request: Request) -> AppState:
    s: AppState = request.app.state.backend
    return s


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: a user of one organisation."""

    user_id: str
    org_id: str


# Declared for OpenAPI (Swagger's Authorize button posts to /api/auth/token); the check itself is ours.
_oauth2 = OAuth2PasswordBearer(tokenUrl="/api/auth/token", auto_error=False)


def principal_from_token(settings: Settings, token: str | None) -> Principal:
    if not token:
        raise HTTPException(401, "Not authenticated", headers={"WWW-Authenticate": "Bearer"})
    try:
        claims = decode_token(settings.jwt_secret, token, "access")
    except TokenError as exc:
        raise HTTPException(401, str(exc), headers={"WWW-Authenticate": "Bearer"}) from exc
    return Principal(str(claims["sub"]), str(claims["org"]))


async def authenticated(request: Request, token: Annotated[str | None, Depends(_oauth2)]) -> Principal:
    return principal_from_token(state(request).settings, token)


Caller = Annotated[Principal, Depends(authenticated)]


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON answer without FastAPI's generic encoder pass (rows are already plain JSON types)."""
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=False, default=str).encode()
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def not_found(what: str) -> HTTPException:
    return HTTPException(404, f"{what} not found")


def check_id(value: str, what: str) -> str:
    """A path id as canonical UUID text; anything that is not a UUID cannot exist, so 404."""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise not_found(what) from None


def validation_error(field_path: list[str | int], message: str, where: str = "body") -> HTTPException:
    """A 422 shaped like FastAPI's own, naming the field."""
    return HTTPException(422, [{"loc": [where, *field_path], "msg": message, "type": "value_error"}])


def parse_time(value: str | None, name: str) -> str | None:
    """An ISO date or datetime query parameter as the UTC timestamp text the tables compare with."""
    if value is None or value == "":
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise validation_error([name], f"not an ISO 8601 date or datetime: {value!r}", "query") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC).isoformat(timespec="microseconds")


def split_list(values: list[str] | None) -> list[str]:
    """Repeated (`?x=a&x=b`) and comma-separated (`?x=a,b`) query values, flattened."""
    out: list[str] = []
    for v in values or []:
        out.extend(p.strip() for p in v.split(",") if p.strip())
    return out


def page_count(total: int, page_size: int) -> int:
    return max(1, math.ceil(total / page_size)) if page_size else 1


def audit(
    db: Database, p: Principal, action: str, entity_type: str, entity_id: str, details: Any = None
) -> None:
    db.execute(
        "INSERT INTO audit_log (id, organization_id, user_id, action, entity_type, entity_id, details,"
        " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (new_id(), p.org_id, p.user_id, action, entity_type, entity_id, json.dumps(details or {}), now_iso()),
    )
