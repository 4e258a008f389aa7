"""The embedded reference backend: started when a run is given no `--host`, stopped when Locust quits.

`locust -f locust_scenarios` with no `--host` runs against a reference backend of its own:
`python -m reference_backend serve --port 0 --ready-file F --demo-data` on 127.0.0.1, SQLite in a
temporary directory, demo data seeded, started by the library's one launcher
(`compliance_loadtest.backend.launch_backend`). It must be started once per run, by the process that
will become the master (or the only process), and known to every process of the run.

Locust forks `--processes` workers right after parsing the command line and before any event a
locustfile can hear, so the start hooks the parse itself: when the parser built for the run returns its
options, the backend is started, `options.host` is set to its URL (so the master, the forked workers and
the web UI all see it as if `--host` had been given) and `CGPT_EMBEDDED_BACKEND` carries its URL, pid
and database to the forked workers. `--worker` processes, `--list` and the like never start one.

It stops when Locust quits (normal end, Ctrl-C, SIGTERM: all go through Locust's `quit` event), at
interpreter exit as a fallback, and on Linux the kernel stops it if the Locust process dies without
either (parent-death signal). Only the process that started it stops it.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import sys
from dataclasses import asdict, dataclass
from typing import Any

from compliance_loadtest.backend import BackendProcess, launch_backend
from compliance_loadtest.db import DatabaseUrlError, check_driver
from compliance_loadtest.errors import BackendStartError, exit_code_for
from compliance_loadtest.plugin.guard import RemoteHostNotAllowed, check_target

__all__ = ["EmbeddedBackend", "EmbeddedBackendError", "embedded_backend"]

logger = logging.getLogger(__name__)

ENV_VAR = "CGPT_EMBEDDED_BACKEND"
READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 10.0

# Options with which Locust only prints something and exits: no backend for those.
_NO_RUN_OPTIONS = ("list_commands", "show_task_ratio", "show_task_ratio_json", "help", "version", "worker")

EmbeddedBackendError = BackendStartError
"""The embedded backend did not start (the name this module used to give `BackendStartError`)."""


@dataclass(frozen=True)
class EmbeddedBackend:
    """Where the run's embedded backend listens and keeps its data."""

    url: str
    pid: int
    database_url: str


@dataclass(frozen=True)
class _Started:
    """The backend as owned by the process that started it (forked workers inherit this module's state)."""

    backend: BackendProcess
    info: EmbeddedBackend
    owner_pid: int


# The one backend of this process's run (None: not started here). A run has at most one, whatever
# number of scenario modules import this; tests start Locust in subprocesses, never in-process.
_started: _Started | None = None
_parse_seen = False


def embedded_backend() -> EmbeddedBackend | None:
    """The run's embedded backend, in the master and in forked workers; None when `--host` was given."""
    if _started is not None:
        return _started.info
    raw = os.environ.get(ENV_VAR)
    if not raw:
        return None
    try:
        return EmbeddedBackend(**json.loads(raw))
    except (TypeError, ValueError):
        return None


def start(options: Any) -> EmbeddedBackend:
    """Start the backend for a run with these parsed options and wait until it serves."""
    global _started
    if _started is not None:
        return _started.info
    settings = {"CGPT_DEMO_EVIDENCE": str(getattr(options, "backend_demo_evidence", 500))}
    first_token = getattr(options, "backend_llm_first_token_ms", None)
    if first_token is not None:
        settings["CGPT_LLM_FIRST_TOKEN_MS"] = str(first_token)
    per_token = getattr(options, "backend_llm_token_ms", None)
    if per_token is not None:
        settings["CGPT_LLM_TOKEN_MS"] = str(per_token)
    backend = launch_backend(
        # A temporary folder of its own (SQLite unless --backend-database-url), removed when it stops.
        data_dir=None,
        database_url=getattr(options, "backend_database_url", "") or None,
        demo_data=True,
        settings=settings,
        environ={k: v for k, v in os.environ.items() if k != ENV_VAR},
        ready_timeout=READY_TIMEOUT_S,
        # Its own session: a terminal's Ctrl-C reaches Locust only, which stops the backend after the
        # last request, not before. The kernel stops it should Locust die without stopping it.
        new_session=True,
        die_with_parent=True,
    )
    info = EmbeddedBackend(backend.url, backend.pid, backend.database_url)
    _started = _Started(backend, info, os.getpid())
    os.environ[ENV_VAR] = json.dumps(asdict(info))
    atexit.register(stop)
    return info


def stop() -> None:
    """Stop the embedded backend if this process started it; safe to call more than once."""
    global _started
    started = _started
    if started is None or started.owner_pid != os.getpid():
        return
    _started = None
    started.backend.stop(STOP_TIMEOUT_S)


def _after_parse(options: Any) -> None:
    """Check the target, or start the embedded backend, once per process, before Locust forks."""
    global _parse_seen
    if _parse_seen:
        return
    _parse_seen = True
    if any(getattr(options, name, False) for name in _NO_RUN_OPTIONS):
        return
    if getattr(options, "host", None):
        try:
            check_target(options.host, allow_remote=bool(getattr(options, "allow_remote_host", False)))
        except RemoteHostNotAllowed as exc:
            sys.stderr.write(f"compliance scenarios: {exc}\n")
            sys.exit(exit_code_for(exc))
        return
    if os.environ.get(ENV_VAR):
        # A process forked by a run that already has one (never start a second).
        options.host = json.loads(os.environ[ENV_VAR])["url"]
        return
    try:
        check_driver(getattr(options, "backend_database_url", "") or "")
    except DatabaseUrlError as exc:
        sys.stderr.write(f"compliance scenarios: --backend-database-url: {exc}\n")
        sys.exit(exit_code_for(exc))
    try:
        info = start(options)
    except BackendStartError as exc:
        sys.stderr.write(f"compliance scenarios: {exc}\n")
        sys.exit(exit_code_for(exc))
    options.host = info.url


def hook_parse(parser: Any) -> None:
    """Start the backend (or check `--host`) when Locust parses its command line: before it forks."""
    parse_args = parser.parse_args

    def parse_args_then_prepare_target(*args: Any, **kwargs: Any) -> Any:
        options = parse_args(*args, **kwargs)
        if not args and kwargs.get("args") is None:
            # Only the parse of the real command line (Locust's main), not one of a list given by code.
            _after_parse(options)
        return options

    parser.parse_args = parse_args_then_prepare_target


def on_init(environment: Any, **_kwargs: Any) -> None:
    """Say where the embedded backend is; stop it at `quit`, after every listener added before this one."""
    environment.events.quit.add_listener(_stop_on_quit)
    if _started is not None and _started.owner_pid == os.getpid():
        logger.info(
            "Embedded reference backend at %s (pid %d); pass --host to test another backend",
            _started.info.url,
            _started.info.pid,
        )


def _stop_on_quit(**_kwargs: Any) -> None:
    stop()


def database_url_for(environment: Any) -> str:
    """The database a run targets: `--db-url` if given, else the embedded backend's database."""
    options = getattr(environment, "parsed_options", None)
    url = str(getattr(options, "db_url", "") or "")
    if url:
        return url
    backend = embedded_backend()
    if backend is not None and backend.database_url:
        return str(backend.database_url)
    raise DatabaseUrlError(
        "no database to connect to: pass --db-url (a postgresql:// URL or a SQLite path), or run without "
        "--host so the embedded backend's database is used"
    )
