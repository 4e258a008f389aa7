"""Workers' stats reports on request: a master that judges the last few seconds asks for them now.

Locust's workers report every 3 s (`locust.runners.WORKER_REPORT_INTERVAL`), so a master's stats trail
the workers' by up to that much. Where the master judges a window of a few seconds (a capacity
search's steps), it calls `fresh_reports`: every live worker is asked for a report at once and
answers as its periodic report is made (`send_report`: every `report_to_master` listener fills it,
Locust's stats and the library's record rows, arrival and iteration counts), tagged with the
request's number; the call returns when each of them has been merged on the master. A report sent
earlier never counts as the answer, so what the master holds afterwards is everything the workers
had done when they answered. A worker lost meanwhile is not waited for; one that does not answer in
`ANSWER_TIMEOUT_S` is named in a warning and the master goes on with what it has.

`on_init` is registered by `compliance_loadtest.plugin.install`.
"""

from __future__ import annotations

import logging
import time
import weakref
from typing import Any

import gevent

logger = logging.getLogger(__name__)

REPORT_NOW_MESSAGE = "cgpt_report_now"
ANSWER_KEY = "cgpt_report_now"
ANSWER_TIMEOUT_S = 4.0
"""Longer than a periodic report interval: a busy worker's answer may wait behind its own report."""
_POLL_S = 0.005


def send_report(environment: Any, runner: Any, extra: dict[str, Any] | None = None) -> None:
    """Send a worker's stats report now, made as Locust's own periodic one is."""
    data: dict[str, Any] = dict(extra or {})
    environment.events.report_to_master.fire(client_id=runner.client_id, data=data)
    runner.send_message("stats", data)


def live_workers(runner: Any) -> list[str]:
    """A master's workers that are connected and not missing (ready, spawning or running)."""
    clients = runner.clients
    return [node.id for node in clients.ready + clients.spawning + clients.running]


class ReportRequests:
    """A master's requests for reports and the answers merged so far."""

    def __init__(self, runner: Any) -> None:
        self.runner = runner
        self.number = 0
        self.answered: set[str] = set()

    def on_worker_report(self, client_id: str, data: dict[str, Any], **_kw: Any) -> None:
        if data.get(ANSWER_KEY) == self.number:
            self.answered.add(client_id)

    def gather(self, timeout: float = ANSWER_TIMEOUT_S) -> bool:
        """Ask every live worker for a report and wait until each answer is merged (or it is lost);
        False when some did not answer within `timeout` seconds."""
        self.number += 1
        self.answered = set()
        waiting = set(live_workers(self.runner))
        if not waiting:
            return True
        self.runner.send_message(REPORT_NOW_MESSAGE, self.number)
        deadline = time.monotonic() + timeout
        while waiting := waiting.intersection(live_workers(self.runner)) - self.answered:
            if time.monotonic() >= deadline:
                logger.warning(
                    "no stats report from %d worker(s) within %.0f s of asking (%s): going on with "
                    "what has arrived",
                    len(waiting),
                    timeout,
                    ", ".join(sorted(waiting)),
                )
                return False
            gevent.sleep(_POLL_S)
        return True


_requests: weakref.WeakKeyDictionary[Any, ReportRequests] = weakref.WeakKeyDictionary()


def fresh_reports(environment: Any, timeout: float = ANSWER_TIMEOUT_S) -> bool:
    """On a master: every live worker's report as of now, merged (see the module). Elsewhere, and
    with no workers, there is nothing to wait for."""
    requests = _requests.get(environment)
    return requests.gather(timeout) if requests is not None else True


def on_init(environment: Any, runner: Any = None, **_kwargs: Any) -> None:
    from locust.runners import MasterRunner, WorkerRunner

    if isinstance(runner, MasterRunner):
        requests = _requests[environment] = ReportRequests(runner)
        environment.events.worker_report.add_listener(requests.on_worker_report)
    elif isinstance(runner, WorkerRunner):
        runner.register_message(
            REPORT_NOW_MESSAGE,
            lambda environment, msg, **_: send_report(environment, runner, {ANSWER_KEY: msg.data}),
        )
