"""Counting a capacity search's iterations for its goodput SLOs, where the requests are made.

The master of a distributed run makes no request, so it cannot tell which iterations met an SLO. While
a search runs, every process that runs users keeps a `JourneyTally` of its own iterations (fed by its
request events), counted by when each iteration was due; each worker sends what changed since its
last report with its stats (also when the master asks for a report, `plugin.reports`), and the
master sums them. A step is then judged on the iterations due in its window, however late their
counts arrived. The SLOs travel to the workers in a custom message (also to a worker that joins
mid-search), so a worker started without the profile still counts.

This module only counts; judging is `compliance_loadtest.capacity`'s, driven from the load shape.
`on_init` is registered by `compliance_loadtest.plugin.install`.
"""

from __future__ import annotations

import time
import weakref
from typing import Any

from compliance_loadtest.capacity import (
    CORRECTED_SUFFIX,
    CapacitySpec,
    JourneyCounts,
    JourneyTally,
    add_taken,
    goodput_rules,
    rules_from_message,
    window,
)
from compliance_loadtest.plugin.arrival import corrected_response_time

SLOS_MESSAGE = "cgpt_goodput_slos"
REPORT_KEY = "cgpt_journeys"


class JourneyCounting:
    """One process's counting: its own tally while a search runs and, on a master, its workers' sum."""

    def __init__(self, environment: Any) -> None:
        self.environment = environment
        self.tally: JourneyTally | None = None
        self.rules: list[dict[str, Any]] | None = None
        """The running search's goodput SLOs as sent to workers (master); None between searches."""
        self.from_workers: dict[int, JourneyCounts] = {}
        """The workers' counts summed, by bucket of intended start (master)."""

    @property
    def _is_master(self) -> bool:
        from locust.runners import MasterRunner

        return isinstance(self.environment.runner, MasterRunner)

    def start(self, spec: CapacitySpec) -> None:
        """A search starts (master or local process): count its iterations from now on."""
        self.from_workers = {}
        if self._is_master:
            self.rules = goodput_rules(spec)
            self.environment.runner.send_message(SLOS_MESSAGE, {"slos": self.rules})
        else:
            self.tally = JourneyTally(spec.slos)

    def stop(self) -> None:
        if self._is_master and self.rules is not None:
            self.environment.runner.send_message(SLOS_MESSAGE, {"slos": None})
        self.rules = None
        self.tally = None

    def window(self, start: float, end: float) -> JourneyCounts:
        """The counts of the iterations due from `start` to `end` (epoch seconds); on a master, as far
        as the workers have reported them."""
        if self._is_master:
            return window(self.from_workers, start, end)
        return self.tally.window(start, end) if self.tally is not None else JourneyCounts()

    def on_slos_message(self, data: dict[str, Any]) -> None:
        slos = data.get("slos")
        self.tally = None if slos is None else JourneyTally(rules_from_message(slos))

    def on_worker_connect(self, client_id: str) -> None:
        if self.rules is not None:
            self.environment.runner.send_message(SLOS_MESSAGE, {"slos": self.rules}, client_id=client_id)

    def on_request(
        self,
        request_type: str,
        name: str,
        response_time: float,
        exception: BaseException | None = None,
        context: dict[str, Any] | None = None,
        start_time: float | None = None,
        **_kw: Any,
    ) -> None:
        tally = self.tally
        intended = (context or {}).get("intended_start")
        if tally is None or intended is None or request_type.endswith(CORRECTED_SUFFIX):
            return
        started = start_time if start_time is not None else time.time() - response_time / 1000.0
        tally.observe(
            request_type,
            name,
            str((context or {}).get("group", "")),
            intended=float(intended),
            started=started,
            response_time=response_time,
            corrected=corrected_response_time(started, float(intended), response_time),
            failed=exception is not None,
        )


_countings: weakref.WeakKeyDictionary[Any, JourneyCounting] = weakref.WeakKeyDictionary()


def journey_counting(environment: Any) -> JourneyCounting:
    """The iteration counting of this environment (created and wired at `init`)."""
    counting = _countings.get(environment)
    if counting is None:
        counting = _countings[environment] = JourneyCounting(environment)
    return counting


def on_init(environment: Any, runner: Any = None, **_kwargs: Any) -> None:
    if runner is None:
        return
    counting = journey_counting(environment)
    from locust.runners import MasterRunner, WorkerRunner

    environment.events.request.add_listener(counting.on_request)
    if isinstance(runner, WorkerRunner):
        runner.register_message(
            SLOS_MESSAGE, lambda environment, msg, **_: counting.on_slos_message(msg.data)
        )

        def report(client_id: str, data: dict[str, Any], **_kw: Any) -> None:
            if counting.tally is not None:
                data[REPORT_KEY] = counting.tally.take()

        environment.events.report_to_master.add_listener(report)
    if isinstance(runner, MasterRunner):

        def add(client_id: str, data: dict[str, Any], **_kw: Any) -> None:
            if counting.rules is not None and (taken := data.get(REPORT_KEY)):
                add_taken(counting.from_workers, taken)

        environment.events.worker_report.add_listener(add)
        environment.events.worker_connect.add_listener(
            lambda client_id, **_: counting.on_worker_connect(client_id)
        )
