"""What the backend keeps per organisation and per connection stays bounded however long a run goes.

A load run registers an organisation per simulated user, so the evidence summaries must not keep one
entry per organisation ever seen; forgetting them must never serve a summary older than a write.
Each worker thread's SQLite connection caches pages of its own, so its page cache has a fixed size.
"""

from __future__ import annotations

import itertools

from reference_backend import schema
from reference_backend.core import OrgSummaries
from reference_backend.db import Database


def test_summaries_of_many_organisations_stay_within_max_entries() -> None:
    summaries = OrgSummaries(max_age=0.0, max_entries=50)
    for i in range(2000):
        org = f"org-{i}"
        summaries.bump(org)
        assert summaries.get("stats", org, lambda i=i: {"n": i}) == {"n": i}
    assert len(summaries) <= 50
    assert summaries.organisations <= 51


def test_summaries_young_enough_to_serve_are_dropped_rather_than_exceed_max_entries() -> None:
    summaries = OrgSummaries(max_age=3600.0, max_entries=50)
    for i in range(500):
        summaries.get("stats", f"org-{i}", lambda: {})
        assert len(summaries) <= 50


def test_a_summary_is_served_until_a_write_then_recomputed() -> None:
    summaries = OrgSummaries(max_age=3600.0, max_entries=1000)
    computed = itertools.count(1)
    assert summaries.get("stats", "a", lambda: next(computed)) == 1
    assert summaries.get("stats", "a", lambda: next(computed)) == 1
    summaries.bump("a")
    assert summaries.get("stats", "a", lambda: next(computed)) == 2


def test_a_write_during_a_computation_is_not_hidden_when_its_version_is_forgotten() -> None:
    summaries = OrgSummaries(max_age=3600.0, max_entries=5)

    def compute_while_written_and_forgotten() -> str:
        # Another thread writes this organisation's evidence, then the cache overflows with other
        # organisations, forgetting the version the write gave it.
        summaries.bump("a")
        for i in range(10):
            summaries.get("stats", f"other-{i}", lambda: "other")
        return "before the write"

    assert summaries.get("stats", "a", compute_while_written_and_forgotten) == "before the write"
    assert summaries.get("stats", "a", lambda: "after the write") == "after the write"


def test_every_sqlite_connection_has_the_bounded_page_cache() -> None:
    db = Database(None)
    try:
        cache = db.connection().execute("PRAGMA cache_size").fetchone()[0]
    finally:
        db.close()
    assert cache == -schema.SQLITE_CACHE_KIB
    assert schema.SQLITE_CACHE_KIB * 24 <= 100 * 1024  # the default 24 threads: at most ~100 MB in all
