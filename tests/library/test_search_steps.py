"""`search.must_find`: the evidence just uploaded is among the results, or the search request fails
with a message that names the query and, when the item may only be outranked, how to single it out."""

from __future__ import annotations

from pathlib import Path

from tests.streaming.headless import run_locust, write_locustfile

FINDER = """
from locust import constant, task
from locust.exception import StopUser
from locust_scenarios import Api, ApiUser, attempt, evidence, search


class OnePerPage(Api):
    MAX_PAGE_SIZE = 1


class FinderUser(ApiUser):
    wait_time = constant(0.1)
    api_class = OnePerPage

    @task
    def find(self):
        item = evidence.create(self, title="Quarterly access review")
        search.must_find(self, item)
        attempt(search.must_find, self, item, query="nowhereword")
        evidence.create(self, title="Quarterly access review")
        attempt(search.must_find, self, item._replace(id="no-such-id"))
        raise StopUser()
"""


def test_must_find_passes_on_the_item_and_fails_naming_the_query_otherwise(tmp_path: Path) -> None:
    run = run_locust(write_locustfile(tmp_path, "finder", FINDER), tmp_path, host=None, users=1, seconds=3)
    assert run.returncode == 1, run.output[-3000:]  # failed requests fail the run
    assert run.requests("GET", "/api/evidence/search") == 3, run.output[-3000:]
    assert sorted(run.errors()) == [
        "GET /api/evidence/search: CatchResponseError(\"search for 'Quarterly access review' did not return "
        "the evidence just uploaded among the first 1 of 2 results: a query that only it matches "
        '(query=...) finds it")',
        "GET /api/evidence/search: CatchResponseError(\"search for 'nowhereword' did not return the "
        'evidence just uploaded (0 results)")',
    ]
