"""Checks and settings a run needs before any load: the scenario seed, `--api-paths`, `--db-url`.

A bad value stops the run at `init` with exit code 2 and a message naming the option, before the
run folder is written or a user is spawned. `refresh_clock` is the last `init` listener of the plugin.
"""

from __future__ import annotations

import logging
import random
from typing import Any

import gevent
from locust.runners import WorkerRunner

from compliance_loadtest.api import Api, api_for
from compliance_loadtest.db import DatabaseUrlError, check_driver, is_postgres, sqlite_path
from compliance_loadtest.errors import UsageError

logger = logging.getLogger(__name__)


def on_init(environment: Any, runner: Any = None, **_kwargs: Any) -> None:
    """Fix the run's seed (printed, so it can be reproduced) and validate the options users read."""
    opts = environment.parsed_options
    if opts is None:
        return
    # A worker's users take the master's seed, which arrives with the test's start: none is drawn here.
    if not getattr(opts, "scenario_seed", "") and not isinstance(runner, WorkerRunner):
        opts.scenario_seed = str(random.SystemRandom().randrange(1 << 31))
        logger.info(
            "Scenario seed %s (pass --scenario-seed %s to reproduce this run's data)",
            *(2 * [opts.scenario_seed]),
        )
    api_for(environment, Api)  # raises ApiPathsError (a UsageError) for a bad --api-paths
    _check_db_url(environment)


def _check_db_url(environment: Any) -> None:
    """A `--db-url` naming a SQLite file that does not exist, an unknown scheme, or PostgreSQL without
    psycopg installed, is refused."""
    url = str(getattr(environment.parsed_options, "db_url", "") or "")
    if not url:
        return
    try:
        check_driver(url)
        if not is_postgres(url) and not sqlite_path(url).is_file():
            raise DatabaseUrlError(f"SQLite database {str(sqlite_path(url))!r} does not exist")
    except DatabaseUrlError as exc:
        raise UsageError(f"--db-url: {exc}") from None


def refresh_clock(**_kwargs: Any) -> None:
    """Locust schedules `--run-time` with gevent.spawn_later right after `init`, from the event loop's
    cached clock; imports and set-up since the loop last ran leave that clock behind, and the run would
    end early by as much (0.3-1 s seen). Refresh it, last."""
    gevent.get_hub().loop.update_now()
