"""Steps that search the organisation's evidence (`GET /api/evidence/search`, full-text, ranked)."""

from __future__ import annotations

from typing import Any

from compliance_loadtest.steps.base import required
from compliance_loadtest.steps.evidence import Evidence


def search(user: Any, query: str | None = None, **filters: Any) -> dict[str, Any]:
    """One search: a common term with an occasional type filter, or `query` with `filters` as given."""
    if query is None and not filters:
        params = user.api.search_params(user.rng)
    else:
        params = {"q": query or user.rng.choice(("security", "policy", "audit")), "page": 1, "page_size": 20}
        params.update(filters)
    body = user.call("GET", "evidence.search", params=params, check=_results_listed)
    return required(user, body, "search evidence")


def _results_listed(body: dict[str, Any]) -> str | None:
    return None if isinstance(body["results"], list) else "'results' is not a list"


def must_find(user: Any, item: Evidence, query: str | None = None) -> dict[str, Any]:
    """Search for `item` (its title, or `query`) and fail unless it is among the results.

    The search is one request (`GET /api/evidence/search`); an answer without the item is a failure
    of that request whose message names the query, so a search index that lags behind writes shows."""
    q = query or item.title
    params = {"q": q, "page": 1, "page_size": user.api.MAX_PAGE_SIZE}

    def finds_it(body: dict[str, Any]) -> str | None:
        results, total = body["results"], body["total_count"]
        if any(str(r.get("id")) == item.id for r in results):
            return None
        if total > len(results):  # other evidence with the same words may outrank it
            return (
                f"search for {q!r} did not return the evidence just uploaded among the first "
                f"{len(results)} of {total} results: a query that only it matches (query=...) finds it"
            )
        return f"search for {q!r} did not return the evidence just uploaded ({total} results)"

    body = user.call("GET", "evidence.search", params=params, check=finds_it)
    return required(user, body, "find the uploaded evidence")
