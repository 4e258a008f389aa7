"""Requests made inside nested TaskSets carry the tags of the task that made them."""

from __future__ import annotations

from pathlib import Path

from tests.streaming.headless import assert_clean_exit, run_locust, write_locustfile

NESTED = """
from locust import SequentialTaskSet, TaskSet, constant, tag, task
from locust_scenarios import ApiUser


class Review(SequentialTaskSet):
    @tag("deep")
    @task
    def deep(self):
        self.user.call("GET", "ops.health", name="deep")

    @task
    def back(self):
        self.interrupt()


@tag("reports")
class Reports(TaskSet):
    tasks = {Review: 1}

    @tag("inner")
    @task(2)
    def inner(self):
        self.user.call("GET", "ops.health", name="inner")

    @task(1)
    def done(self):
        self.interrupt()


class NestedUser(ApiUser):
    wait_time = constant(0.02)
    tasks = {Reports: 2}

    @tag("root")
    @task(1)
    def root(self):
        self.call("GET", "ops.health", name="root")
"""


def test_each_request_carries_the_tags_of_its_own_task(tmp_path: Path) -> None:
    run = run_locust(
        write_locustfile(tmp_path, "nested", NESTED), tmp_path, host=None, users=2, seconds=4, record=True
    )
    assert_clean_exit(run)
    record = run.record()
    tags = {name: set(record.loc[record["name"] == name, "tags"]) for name in ("root", "inner", "deep")}
    assert tags["root"] == {"root"}
    # A class-level @tag on a TaskSet applies to its tasks, nested ones included (as Locust's -T sees it).
    assert tags["inner"] == {"inner,reports"}
    assert tags["deep"] == {"deep,reports"}
    assert set(record.loc[record["name"] == "/api/auth/login", "tags"]) == {"auth"}
