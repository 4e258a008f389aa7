"""Ending a test from inside the run (a rule that stops it, benchmark users done) as Locust ends one at
its run time (`locust.main`'s `stop_and_optionally_quit`): a headless run quits; an `--autostart` run in
the web UI stops, and quits `--autoquit` seconds later when that is set; any other web UI run stops and
the UI stays."""

from __future__ import annotations

from typing import Any

import gevent


def end_test(environment: Any) -> str:
    """End the environment's test on a greenlet of its own (a user's greenlet or a message handler that
    quits would kill itself); what it does: "quitting" or "stopping"."""
    opts = environment.parsed_options
    runner = environment.runner
    if opts is None or getattr(opts, "headless", False):
        gevent.spawn(runner.quit)
        return "quitting"
    autoquit = getattr(opts, "autoquit", -1)
    if getattr(opts, "autostart", False) and autoquit is not None and autoquit >= 0:
        gevent.spawn(_stop_then_quit, environment, float(autoquit))
    else:
        gevent.spawn(runner.stop)
    return "stopping"


def _stop_then_quit(environment: Any, autoquit_s: float) -> None:
    environment.runner.stop()
    gevent.sleep(autoquit_s)
    environment.runner.quit()
    if environment.web_ui is not None:
        environment.web_ui.stop()
