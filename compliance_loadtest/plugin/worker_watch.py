"""A worker's watch on its master, kept apart from the run folder's worker side.

Every worker runs it, with a run folder or without: once the master has been silent for
`MASTER_LOST_S`, the worker stops its users and quits (Locust's own limit is 60 s, a minute of load
nobody records). It imports nothing heavy, so a worker whose master has no --run-dir never loads
pyarrow: the run folder's worker side (`run_output.WorkerOutput`) starts only when the
master's spawn message carries --run-dir.
"""

from __future__ import annotations

import logging
import time
import weakref
from typing import Any

import gevent

from compliance_loadtest.errors import EXIT_INVALID_RUN

logger = logging.getLogger(__name__)

# A worker that has had no heartbeat from its master for this long quits, stopping its users (Locust's
# own limit is 60 s, a minute of load nobody records). The master answers every heartbeat each second.
MASTER_LOST_S = 5.0
CHECK_INTERVAL_S = 1.0

_lost: weakref.WeakSet[Any] = weakref.WeakSet()


def master_lost(environment: Any) -> bool:
    """Whether this worker gave up on its master (there is nobody to send a last report to)."""
    return environment in _lost


def start(environment: Any, runner: Any) -> None:
    runner.greenlet.spawn(_watch, environment, runner)


def _watch(environment: Any, runner: Any) -> None:
    while True:
        gevent.sleep(CHECK_INTERVAL_S)
        last = runner.last_heartbeat_timestamp
        if last is None or time.time() - last <= MASTER_LOST_S:
            continue
        logger.error(
            "lost the master: no heartbeat from %s:%s for %.0f s; stopping this worker's users and quitting",
            runner.master_host,
            runner.master_port,
            time.time() - last,
        )
        _lost.add(environment)
        environment.process_exit_code = EXIT_INVALID_RUN
        runner.quit()
        return
