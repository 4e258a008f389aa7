"""Secrets out at the source: whatever a process that loads the library measures, logs or reports passes
through the one redactor (`compliance_loadtest.redact`) before Locust or any listener keeps it.

    redact_request_events(hook)   every request event: its stat `name` (Locust's clients make it from
                                  the URL, query string included, when no name is given), its failure
                                  (`exception`) and its `url`, for every user, ours or not
    redact_user_errors(runner)    the exceptions table (a task's exception: message and traceback)
    redact_log_records()          every log record of the process, its traceback included
    redact_report_host()          the host Locust's HTML report shows (`--host http://user:pw@...`)

So Locust's statistics, its CSV, JSON and HTML, its web UI, the exact record and summary.json never
hold a secret, and nothing is rewritten afterwards. The host keeps its password inside the process:
Locust's clients take Basic auth from it, and the master sends it to its workers.

A request event pays a cached lookup for its name and a substring scan of its URL's query when nothing
needs redacting (a microsecond or two); a failure's text is redacted when it fires, and the failure is
replaced (`redact.redact_exception`: the same class, its text redacted) only when it held a secret.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from compliance_loadtest.redact import redact_exception, redact_text, redact_url

__all__ = [
    "install",
    "on_init",
    "redact_log_records",
    "redact_report_host",
    "redact_request_events",
    "redact_user_errors",
    "stat_name",
]

# Marks what is already wrapped, so installing twice (two locustfiles, tests) wraps once.
_MARK = "_redacts_secrets"


def _marked(function: Any) -> bool:
    return bool(getattr(function, _MARK, False))


def _mark(function: Any) -> Any:
    setattr(function, _MARK, True)
    return function


def install() -> None:
    """What needs no environment: Locust's default request event, log records, the HTML report's host."""
    from locust import events

    redact_request_events(events.request)
    redact_log_records()
    redact_report_host()


def on_init(environment: Any, runner: Any = None, **_kwargs: Any) -> None:
    """The run's own request event (an `Environment` may have events of its own) and its runner."""
    redact_request_events(environment.events.request)
    if runner is not None:
        redact_user_errors(runner)


@functools.lru_cache(maxsize=4096)
def stat_name(name: str) -> str:
    """A stat name without secrets (`/x?token=<redacted>`); names are few, so each is redacted once."""
    return redact_text(name)


def redact_request_events(hook: Any) -> None:
    """Make `hook` (Locust's request event) redact each event's `name`, `exception` and `url` before its
    listeners see them: Locust's statistics, the exact record and everyone else's."""
    if _marked(hook.fire):
        return
    fire = hook.fire

    def fire_redacted(*, reverse: bool = False, **kwargs: Any) -> Any:
        name = kwargs.get("name")
        if type(name) is str:
            kwargs["name"] = stat_name(name)
        exception = kwargs.get("exception")
        if exception is not None:
            kwargs["exception"] = redact_exception(exception)
        url = kwargs.get("url")
        if type(url) is str and ("?" in url or "@" in url):  # a URL's secrets: its query, its password
            kwargs["url"] = redact_text(url)
        return fire(reverse=reverse, **kwargs)

    hook.fire = _mark(fire_redacted)


def redact_user_errors(runner: Any) -> None:
    """Redact the message and traceback of every exception a task raised before the runner keeps it
    (its exceptions table: the web UI, `locust_exceptions.csv`, the HTML report). A worker sends its
    exceptions to the master, whose runner redacts them; a traceback quotes source lines, and a
    locustfile may hold a literal token."""
    log_exception = runner.log_exception
    if _marked(log_exception):
        return

    def log_redacted(node_id: str, msg: str, formatted_tb: str) -> None:
        log_exception(node_id, redact_text(str(msg)), redact_text(str(formatted_tb)))

    runner.log_exception = _mark(log_redacted)


def redact_log_records() -> None:
    """Every log record made in this process from now on carries its message, traceback and stack
    redacted, whichever logger and handler it goes to (Locust logs a task's exception with its
    traceback, and a listener may log a URL)."""
    factory = logging.getLogRecordFactory()
    if _marked(factory):
        return

    def make_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        _redact_record(record)
        return record

    logging.setLogRecordFactory(_mark(make_record))


def _redact_record(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # a malformed call: logging reports it when the record is formatted
        return
    clean = redact_text(message)
    if clean != message:
        record.msg, record.args = clean, None
    if record.exc_info and not record.exc_text:
        text = logging.Formatter().formatException(record.exc_info)
        clean = redact_text(text)
        if clean != text:
            record.exc_text = clean  # what every formatter prints instead of formatting the traceback
    if record.stack_info:
        record.stack_info = redact_text(record.stack_info)


def redact_report_host() -> None:
    """Locust's HTML report (written by Locust for `--html`, by the library into the run folder, served
    by the web UI) shows the host without its password. Locust's `get_html_report` renders through
    `locust.html.render_template_from`, which is wrapped here."""
    import locust.html

    render = locust.html.render_template_from
    if _marked(render):
        return
    locust.html.render_template_from = _mark(_without_host_password(render))


def _without_host_password(render: Callable[..., str]) -> Callable[..., str]:
    @functools.wraps(render)
    def render_redacted(file: str, *args: Any, **kwargs: Any) -> str:
        template_args = kwargs.get("template_args")
        if isinstance(template_args, dict) and isinstance(template_args.get("host"), str):
            kwargs["template_args"] = {**template_args, "host": redact_url(template_args["host"])}
        return render(file, *args, **kwargs)

    return render_redacted
