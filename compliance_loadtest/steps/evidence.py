"""Steps on the organisation's evidence: upload, list, view, change, bulk work, statistics.

Every step takes the user (an `ApiUser`), sends through its API layer and checks the answer; evidence
it creates or lists is remembered in `user.workspace.evidence_ids`, from which later steps pick.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import gevent

from compliance_loadtest.api import EVIDENCE_STATUSES
from compliance_loadtest.steps.base import required


class Evidence(NamedTuple):
    """One piece of evidence as created: its id and title, and the whole answer."""

    id: str
    title: str
    body: dict[str, Any]


def create(user: Any, *, title: str | None = None) -> Evidence:
    """`POST /api/evidence` with generated content (`title` to choose the title)."""
    payload = user.api.evidence_payload(user.fake, user.rng)
    if title is not None:
        payload["title"] = title
    body = required(user, user.call("POST", "evidence.create", json=payload), "upload evidence")
    user.workspace.remember_evidence([body["id"]])
    return Evidence(str(body["id"]), str(body.get("title", payload["title"])), body)


def list_page(user: Any, *, filtered: bool = False, page: int = 1, page_size: int = 20) -> dict[str, Any]:
    """`GET /api/evidence`: one page, filtered and sorted at random with `filtered`."""
    params = user.api.evidence_list_params(user.rng, page=page, page_size=page_size, filtered=filtered)
    body: dict[str, Any] = required(user, user.call("GET", "evidence.list", params=params), "list evidence")
    if not filtered:
        user.workspace.remember_evidence(item["id"] for item in body["results"] if "id" in item)
    return body


def pick(user: Any) -> str:
    """An evidence id of the organisation: a remembered one, or a new upload when none is known."""
    evidence_id = user.workspace.some_evidence(user.rng)
    return evidence_id if evidence_id is not None else create(user).id


def view(user: Any, evidence_id: str | None = None) -> dict[str, Any]:
    """`GET /api/evidence/[id]`."""
    ids = {"id": evidence_id or pick(user)}
    return required(user, user.call("GET", "evidence.get", ids=ids), "view evidence")


def update_status(user: Any, evidence_id: str | None = None) -> dict[str, Any]:
    """`PATCH /api/evidence/[id]`: a new status and a note."""
    ids = {"id": evidence_id or pick(user)}
    payload = user.api.evidence_update_payload(user.fake, user.rng)
    body = user.call("PATCH", "evidence.update", ids=ids, json=payload)
    return required(user, body, "update evidence")


def stats(user: Any) -> dict[str, Any]:
    """`GET /api/evidence/stats`."""
    return required(user, user.call("GET", "evidence.stats"), "evidence statistics")


def bulk_create(user: Any, count: int) -> list[str]:
    """`POST /api/evidence/bulk` of `count` items; fails unless all `count` were created."""

    def all_created(body: dict[str, Any]) -> str | None:
        if body["created_count"] != count or len(body["ids"]) != count:
            return f"created {body['created_count']} of {count} ({len(body['ids'])} ids)"
        return None

    payload = user.api.bulk_evidence_payload(user.fake, user.rng, count)
    body = user.call("POST", "evidence.bulk_create", json=payload, check=all_created)
    ids = [str(i) for i in required(user, body, f"bulk upload of {count}")["ids"]]
    user.workspace.remember_evidence(ids)
    return ids


def bulk_update(user: Any, ids: Sequence[str], status: str | None = None, reason: str = "review") -> None:
    """`POST /api/evidence/bulk-update` of `ids` to `status` (random when None); fails unless every one
    was updated and none failed."""
    status = status or user.rng.choice(EVIDENCE_STATUSES)
    count = len(ids)

    def all_updated(body: dict[str, Any]) -> str | None:
        if body["updated_count"] != count or body["failed_count"] != 0:
            return f"updated {body['updated_count']} of {count}, {body['failed_count']} failed"
        return None

    payload = user.api.bulk_update_payload(ids, status, reason)
    body = user.call("POST", "evidence.bulk_update", json=payload, check=all_updated)
    required(user, body, f"bulk update of {count}")


def largest_page(user: Any) -> dict[str, Any]:
    """`GET /api/evidence` with the largest page the API allows."""
    return list_page(user, page_size=user.api.MAX_PAGE_SIZE)


def contended_update(user: Any, writers: int, evidence_id: str | None = None) -> None:
    """`writers` simultaneous `PATCH /api/evidence/[id]` of one record, as several reviewers at once."""
    ids = {"id": evidence_id or pick(user)}
    payloads = [user.api.evidence_update_payload(user.fake, user.rng) for _ in range(writers)]
    greenlets = [gevent.spawn(user.call, "PATCH", "evidence.update", ids=ids, json=p) for p in payloads]
    gevent.joinall(greenlets)
