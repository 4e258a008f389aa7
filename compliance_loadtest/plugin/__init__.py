"""The library's Locust plugin, wired in one place: `install()`.

`import locust_scenarios` calls `install()`, so any locustfile that imports anything of the library
(a user base, one step, only the load shape) gets every option and listener below, exactly once per
process, also when several locustfiles are loaded together (`-f mine.py,locust_scenarios`).

What it adds to Locust: at once, for everything the process does from then on,

    redaction.install         request events (stat names, failures, URLs), log records and the HTML
                              report's host pass through the one redactor, whoever's users they are
    guard.guard_every_session every HTTP session Locust makes keeps to its own host (redirects too)

and these listeners, in the order they run:

    init_command_line_parser  options.add_options     the library's command-line options
                              embedded.hook_parse     check --host, or start the embedded backend
    init                      redaction.on_init       the run's request event and exceptions table
                              guard.on_init           WebSocket connections keep to the run's host
                              preflight.on_init       scenario seed, --api-paths, --db-url
                              benchmarks.on_init      --benchmark-config; benchmark users left out of mixes
                              shape.on_init           --load-profile (or plain Locust without it)
                              run_output.on_init      --run-dir: exact record, resources, run.json
                                                      (imported only by a process that needs it)
                              live.on_init            --thresholds judged while the run goes
                                                      (imported only by the master or a local run),
                              verdict_tab             and its Verdict tabs in the web UI
                              web_form.on_init        the start form: a profile's stages, benchmarks unticked
                              arrival.on_init         arrival-rate slots across processes
                              goodput.on_init         a capacity search's iterations counted per process
                              reports.on_init         workers' stats reports on the master's request
                              embedded.on_init        announce the embedded backend; stop it at quit
                              preflight.refresh_clock last: Locust schedules --run-time right after

A `LoadTestError` raised by an `init` listener ends the process with that error's exit code (2 for bad
input) and its message on stderr, before any load: `_exit_on_error` is the one place that maps them.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

from locust import events as locust_events

from compliance_loadtest.errors import LoadTestError

__all__ = ["install", "installed"]

_installed = False


def installed() -> bool:
    """Whether this process's Locust has the library's options and listeners."""
    return _installed


def install() -> None:
    """Add the library's options and listeners to Locust's events; calling it again does nothing."""
    global _installed
    if _installed:
        return
    _installed = True
    from compliance_loadtest.plugin import (
        arrival,
        benchmarks,
        embedded,
        goodput,
        guard,
        options,
        preflight,
        redaction,
        reports,
        shape,
        web_form,
    )

    redaction.install()
    guard.guard_every_session()
    locust_events.init_command_line_parser.add_listener(options.add_options)
    locust_events.init_command_line_parser.add_listener(embedded.hook_parse)
    for listener in (
        redaction.on_init,
        guard.on_init,
        preflight.on_init,
        benchmarks.on_init,
        shape.on_init,
        _run_output_on_init,
        _live_on_init,
        web_form.on_init,
        arrival.on_init,
        goodput.on_init,
        reports.on_init,
        embedded.on_init,
        preflight.refresh_clock,
    ):
        locust_events.init.add_listener(_exit_on_error(listener))


def _run_output_on_init(environment: Any, runner: Any = None, **kwargs: Any) -> None:
    """`run_output.on_init`, importing it (and pyarrow with it) only for a process that writes
    or feeds a run folder: everything else, a plain `locust -f`, a worker whose master has no
    --run-dir, or a script that imports a step, stays about 40 MB lighter. A worker learns whether its
    master has a run folder from the spawn message, so its side is settled at test_start."""
    from locust.runners import WorkerRunner

    if runner is None:
        return
    if isinstance(runner, WorkerRunner):
        from compliance_loadtest.plugin import worker_watch

        worker_watch.start(environment, runner)
        environment.events.test_start.add_listener(_worker_output_on_test_start)
        return
    if not getattr(environment.parsed_options, "run_dir", ""):
        return
    from compliance_loadtest.plugin import run_output

    run_output.on_init(environment=environment, runner=runner, **kwargs)


def _worker_output_on_test_start(environment: Any, **_kw: Any) -> None:
    if not getattr(environment.parsed_options, "run_dir", ""):
        return
    from compliance_loadtest.plugin import run_output

    run_output.worker_on_test_start(environment)


def _live_on_init(environment: Any, runner: Any = None, **kwargs: Any) -> None:
    """`live.on_init`, importing it (pandas, pyarrow and the analysis come with it) only in the process
    that judges the run while it goes: a master or a local run with the web UI or a thresholds file,
    unless --no-live-verdict. A headless run without thresholds starts about a second sooner."""
    from locust.runners import WorkerRunner

    options = environment.parsed_options
    if runner is None or isinstance(runner, WorkerRunner) or options is None:
        return
    if getattr(options, "no_live_verdict", False):
        return
    if getattr(options, "headless", False) and not getattr(options, "thresholds", ""):
        return
    from compliance_loadtest.plugin import live

    live.on_init(environment=environment, runner=runner, **kwargs)
    verdict = live.live_verdict_of(environment)
    if verdict is not None and kwargs.get("web_ui") is not None:
        from compliance_loadtest.plugin import verdict_tab

        verdict_tab.add_verdict_tab(kwargs["web_ui"], verdict)


def _exit_on_error(listener: Callable[..., None]) -> Callable[..., None]:
    """Run an `init` listener; a `LoadTestError` stops the process with its exit code and message.

    Locust's event hook logs and swallows an ordinary exception; `SystemExit` goes through it."""

    @functools.wraps(listener)
    def run(**kwargs: Any) -> None:
        try:
            listener(**kwargs)
        except LoadTestError as exc:
            sys.stderr.write(f"compliance scenarios: {exc.report()}\n")
            sys.stderr.flush()
            raise SystemExit(exc.exit_code) from None

    return run
