"""The run folder (`--run-dir`): exact request record, resource samples, summary.json and run.json.

Layout and columns: docs/run-folder.md; in code, the run folder's contract
(`compliance_loadtest.run_folder`: file names, `RunInfo` for run.json), with which the analysis reads
the folder. Everything is written by the master (or the single local process). A worker sends its
record rows and its own resource samples inside Locust's stats report (`report_to_master`): its rows
and Locust's statistics for the same requests travel in the same message, so the record and Locust's
totals agree also when a worker dies. Workers report every second while they have rows, besides
Locust's own report every three seconds.

At the end of a run the master asks the workers to quit (as Locust does) and keeps reading their final
reports, bounded by `FINAL_REPORT_GRACE_S` after the stop timeout, before Locust prints its final
statistics: the terminal summary, summary.json and the record then count the same requests, also when
the run ends by SIGTERM or Ctrl-C. Workers that went missing, stopped reporting or never sent a final
report are named in run.json, which also says whether a load generator's CPU was saturated.

`on_init` is registered by `compliance_loadtest.plugin.install`. It must not import scenario files.
"""

from __future__ import annotations

import atexit
import contextlib
import csv
import io
import json
import logging
import signal
import time
import weakref
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gevent
import gevent.event
import locust
import psutil
import pyarrow as pa
from locust import log, stats
from locust.html import get_html_report
from locust.runners import STATE_INIT, STATE_MISSING, STATE_STOPPED, MasterRunner, WorkerRunner

from compliance_loadtest import run_folder as rf
from compliance_loadtest.errors import EXIT_INVALID_RUN, UsageError
from compliance_loadtest.plugin import reports, worker_watch
from compliance_loadtest.plugin.monitor import (
    SAMPLE_INTERVAL_S,
    ProcessSampler,
    ResourceLog,
    Sample,
    find_listening_pid,
    is_loopback_host,
    own_sampler,
    target_address,
)
from compliance_loadtest.plugin.options import SECRET_OPTIONS
from compliance_loadtest.plugin.record import (
    PART_MAX_ROWS,
    PartWriter,
    RequestRecorder,
    part_interval_s,
    table_from_bytes,
    table_to_bytes,
    warm_up,
)
from compliance_loadtest.redact import REDACTED, redact, redact_url
from compliance_loadtest.run_folder import (
    EndedBy,
    Record,
    Resources,
    Role,
    RunInfo,
    StoppedBy,
    System,
    Workers,
)

logger = logging.getLogger(__name__)

# Key of the library's part of a worker's stats report.
REPORT_KEY = "compliance_run_output"
# A worker with rows waiting reports at least this often (Locust's own report comes every 3 s).
WORKER_REPORT_INTERVAL_S = 1.0
# resources.csv is rewritten whole (atomically) this often.
RESOURCES_WRITE_INTERVAL_S = 5.0
# Space kept in the run folder (a hidden file) for the last summary.json and run.json: on a full disk
# they still say why the run is invalid.
RESERVE_NAME = ".space-reserve"
RESERVE_BYTES = 1 << 20
# After the stop timeout, how long the master waits for the workers' final reports.
FINAL_REPORT_GRACE_S = 10.0
# A running worker that has not reported for this long is counted as lost.
REPORT_STALE_S = 15.0


def utc_iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return str(value)


def redacted_options(options: Any) -> dict[str, Any]:
    """The parsed options as JSON values, secrets redacted: SECRET_OPTIONS whole, other values by the one
    redactor (values of options named like a secret, passwords inside URLs, `key=value` secrets)."""
    return {
        key: REDACTED if key in SECRET_OPTIONS and value else redact(_json_value(value), key)
        for key, value in sorted(vars(options).items())
    }


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically: a reader sees the old file or the new one, never half of one."""
    rf.write_atomically(path, json.dumps(data, indent=2, allow_nan=False) + "\n")


def write_final_csv(writer: stats.StatsCSV, prefix: str) -> None:
    """Locust's `_stats`, `_failures` and `_exceptions` CSV files with the final statistics, each
    written atomically."""
    for suffix, write in (
        (rf.STATS_CSV_SUFFIX, writer.requests_csv),
        (rf.FAILURES_CSV_SUFFIX, writer.failures_csv),
        (rf.EXCEPTIONS_CSV_SUFFIX, writer.exceptions_csv),
    ):
        text = io.StringIO(newline="")
        write(csv.writer(text))
        rf.write_atomically(Path(rf.locust_csv(suffix, prefix)), text.getvalue())


def save_stats_json(request_stats: stats.RequestStats, path: Path) -> None:
    """What Locust's `--json-file` holds, without emptying the statistics.

    Locust's own `save_stats_json` serializes each entry the way a worker's report does, which resets
    it: anything written after it (Locust's CSV at exit, the HTML report) would show zeros.
    """
    entries = [e.serialize() for e in request_stats.entries.values() if e.num_requests or e.num_failures]
    rf.write_atomically(path, json.dumps(entries, indent=4))


class LocustCsvFiles(stats.StatsCSVFileWriter):
    """Locust's four CSV files (`--csv`'s), their rows kept in memory and each file written atomically.

    Locust's own writer rewrites its files in place every second: a full disk or a kill in the middle of
    a write leaves them cut. This one takes the same rows (`add_history` each second) and `write`s every
    file whole under a temporary name; a write that fails changes nothing and can be repeated.
    """

    def __init__(self, environment: Any, prefix: str, full_history: bool) -> None:
        # Not the file writer's own __init__: it opens the files, to write them in place.
        stats.StatsCSV.__init__(self, environment, stats.PERCENTILES_TO_REPORT)
        self.base_filepath = prefix
        self.full_history = full_history
        self.history = io.StringIO(newline="")
        self.history_writer = csv.writer(self.history)
        self.history_writer.writerow(
            [
                "Timestamp", "User Count", "Type", "Name", "Requests/s", "Failures/s",
                *stats.get_readable_percentiles(self.percentiles_to_report),
                "Total Request Count", "Total Failure Count", "Total Median Response Time",
                "Total Average Response Time", "Total Min Response Time", "Total Max Response Time",
                "Total Average Content Size",
            ]
        )  # fmt: skip

    def add_history(self) -> None:
        """The `_stats_history.csv` rows of now."""
        self._stats_history_data_rows(self.history_writer, time.time())

    def write(self) -> None:
        write_final_csv(self, self.base_filepath)
        rf.write_atomically(Path(self.stats_history_file_name()), self.history.getvalue())


class RunDirError(UsageError):
    """A --run-dir that cannot be used; the message says which folder and why."""


def prepare_run_dir(run_dir: Path) -> None:
    """Create the folder; refuse one that already holds a run, so nothing of it is overwritten."""
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"--run-dir {run_dir}: exists and is not a folder")
    leftovers = [p.name for p in (run_dir / rf.RUN_JSON, run_dir / rf.SUMMARY_JSON) if p.exists()]
    requests = run_dir / rf.REQUESTS_DIR
    if requests.is_dir() and any(requests.glob(rf.PART_GLOB)):
        leftovers.append(f"{rf.REQUESTS_DIR}/{rf.PART_GLOB}")
    if leftovers:
        raise RunDirError(
            f"--run-dir {run_dir}: already holds a run ({', '.join(leftovers)}); give an empty or new folder"
        )
    try:
        requests.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RunDirError(f"--run-dir {run_dir}: cannot create it ({e.strerror})") from e


class WorkerOutput:
    """A worker's side: records its requests and samples itself, and reports both to the master.

    Whether a run records is the master's decision (its --run-dir reaches the workers with the spawn
    message), so it is settled at test_start, not at init: `worker_on_test_start` makes it the first
    time the master's options carry --run-dir, and calls its `on_test_start` at that test_start and
    every one after.
    """

    def __init__(self, environment: Any, runner: WorkerRunner) -> None:
        self.environment = environment
        self.runner = runner
        self.recorder = RequestRecorder(runner.client_id)
        self.listening = False
        self.record = False
        self.monitor = False
        self.sampler: ProcessSampler | None = None
        self.samples: list[Sample] = []
        environment.events.report_to_master.add_listener(self.on_report_to_master)
        environment.events.quitting.add_listener(self.on_quitting)
        runner.greenlet.spawn(self._tick)

    def on_test_start(self, environment: Any, **_kw: Any) -> None:
        opts = environment.parsed_options
        self.monitor = bool(opts and getattr(opts, "run_dir", ""))
        self.record = self.monitor and not getattr(opts, "no_request_record", False)
        if self.record and not self.listening:
            warm_up()
            environment.events.request.add_listener(self.recorder.on_request)
            self.listening = True
        if self.monitor and self.sampler is None:
            self.sampler = own_sampler(self.runner.client_id)

    def on_report_to_master(self, client_id: str, data: dict[str, Any], **_kw: Any) -> None:
        rows = table_to_bytes(self.recorder.take_table()) if len(self.recorder) else None
        data[REPORT_KEY] = {
            "rows": rows,
            "samples": self.samples,
            "stopped": self.runner.state in (STATE_INIT, STATE_STOPPED),
        }
        self.samples = []

    def send_report(self) -> None:
        """Send Locust's stats and the waiting rows now, in one message, as Locust's own report does."""
        reports.send_report(self.environment, self.runner)

    def _tick(self) -> None:
        while True:
            gevent.sleep(WORKER_REPORT_INTERVAL_S)
            if worker_watch.master_lost(self.environment):
                return
            try:
                if self.sampler is not None and (s := self.sampler.sample()):
                    self.samples.append(s)
                if len(self.recorder):
                    self.send_report()
            except Exception:
                logger.exception("run output: worker report failed")

    def on_quitting(self, environment: Any, **_kw: Any) -> None:
        # Runs before Locust's own quitting listener says goodbye to the master (listeners run in
        # reverse order): stop the users so their last requests are recorded, then report them. A
        # worker that lost its master has nobody to send a final report to.
        if not self.monitor or worker_watch.master_lost(environment):
            return
        try:
            self.runner.stop()
            self.send_report()
        except Exception:
            logger.exception("run output: final worker report failed")


WORKER_OUTPUTS: weakref.WeakKeyDictionary[Any, WorkerOutput] = weakref.WeakKeyDictionary()


def worker_on_test_start(environment: Any) -> None:
    """A worker's test_start when the master's options carry --run-dir: its run folder side, made the
    first time, settles whether this run records."""
    output = WORKER_OUTPUTS.get(environment)
    if output is None:
        output = WORKER_OUTPUTS[environment] = WorkerOutput(environment, environment.runner)
    output.on_test_start(environment)


class _WorkerSeen:
    def __init__(self) -> None:
        self.rows = 0
        self.stopped = False
        self.last_report = time.monotonic()


class RunOutput:
    """The master's (or local process's) side: gathers, writes and sums up the run folder."""

    def __init__(self, environment: Any, runner: Any, run_dir: Path) -> None:
        opts = environment.parsed_options
        self.environment = environment
        self.runner = runner
        self.run_dir = run_dir
        self.is_master = isinstance(runner, MasterRunner)
        self.role: Role = "master" if self.is_master else "local"
        self.started = time.time()
        self.test_started: float | None = None
        self.ended_by: EndedBy | None = None
        self.notes: list[str] = []
        self.problems: list[str] = []
        # Writes failing now (a full disk), by what they write: each is logged once and retried.
        self.failing: dict[str, str] = {}
        self.write_failed = False
        self.exit_listener_added = False
        # Locust may run its shutdown twice at once (SIGTERM handler and main greenlet): the first call of
        # each end step does the work, later ones wait for it, so nothing exits half-way through a write.
        self.collecting = False
        self.collected = gevent.event.Event()
        self.finished = False
        self.written = gevent.event.Event()
        self.stats_reset = bool(getattr(opts, "reset_stats", False))

        self.record = not getattr(opts, "no_request_record", False)
        self.parts = PartWriter(run_dir / rf.REQUESTS_DIR)
        self.recorder = RequestRecorder(self.role)
        self.pending: list[pa.Table] = []
        self.pending_rows = 0
        self.table_listeners: list[Callable[[pa.Table], None]] = []
        """Called with every record table the process gathers (the live verdict reads them)."""
        self.stopped_by: StoppedBy | None = None
        self.last_part = time.monotonic()

        self.resources = ResourceLog(run_dir / rf.RESOURCES_CSV)
        self.last_resources = time.monotonic()
        self.reserve = run_dir / RESERVE_NAME
        self._reserve_space()
        self.own = own_sampler(self.role)
        self.target: ProcessSampler | None = None
        self.target_settled = False
        self.target_attempt = -10.0

        self.workers: dict[str, _WorkerSeen] = {}
        self.lost: dict[str, str] = {}
        self.expected_workers = int(getattr(opts, "expect_workers", 0) or 0) if self.is_master else 0

        # Locust's files, unless the command line names its own.
        self.csv_writer: LocustCsvFiles | None = None
        if opts.csv_prefix is None:
            self.csv_writer = LocustCsvFiles(
                environment,
                str(run_dir / rf.LOCUST_PREFIX),
                bool(getattr(opts, "stats_history_enabled", False)),
            )
        self.write_json_file = opts.json_file is None
        self.write_html_file = opts.html_file is None

        ev = environment.events
        if self.record:
            warm_up(run_dir / rf.REQUESTS_DIR)
            ev.request.add_listener(self.recorder.on_request)
        ev.test_start.add_listener(self.on_test_start)
        ev.reset_stats.add_listener(self.on_reset_stats)
        ev.quitting.add_listener(self.on_quitting)
        ev.quit.add_listener(self.on_quit)
        if self.is_master:
            ev.worker_report.add_listener(self.on_worker_report)
            ev.worker_connect.add_listener(self.on_worker_connect)
        self._watch_signals()
        # Finding the target can scan every process's sockets: do it now, not while users run.
        self._settle_target()
        self.tick_greenlet = runner.greenlet.spawn(self._tick)
        self.write_run_json(exit_code=None)

    # --- signals ---------------------------------------------------------------------------------

    def _watch_signals(self) -> None:
        # Registered before Locust's own SIGTERM handler, so it runs first and the run knows why it ends.
        self._sigterm = gevent.signal_handler(signal.SIGTERM, self._on_sigterm)
        previous = signal.getsignal(signal.SIGINT)

        def on_sigint(signum: int, frame: Any) -> None:
            self.ended_by = self.ended_by or "SIGINT"
            if callable(previous):
                previous(signum, frame)
            else:
                raise KeyboardInterrupt

        with contextlib.suppress(ValueError):  # not the main thread (embedded use): keep Python's handler
            signal.signal(signal.SIGINT, on_sigint)

    def _on_sigterm(self) -> None:
        self.ended_by = self.ended_by or "SIGTERM"

    # --- during the run --------------------------------------------------------------------------

    def on_test_start(self, environment: Any, **_kw: Any) -> None:
        if self.test_started is None:
            self.test_started = time.time()
        self._settle_target()

    def on_reset_stats(self, **_kw: Any) -> None:
        self.stats_reset = True

    def on_worker_connect(self, client_id: str, **_kw: Any) -> None:
        self.workers.setdefault(client_id, _WorkerSeen())

    def on_worker_report(self, client_id: str, data: dict[str, Any], **_kw: Any) -> None:
        payload = data.get(REPORT_KEY)
        if payload is None:
            return
        seen = self.workers.setdefault(client_id, _WorkerSeen())
        seen.last_report = time.monotonic()
        seen.stopped = bool(payload.get("stopped"))
        rows = payload.get("rows")
        if rows and self.record and not self.finished:
            table = table_from_bytes(rows)
            seen.rows += table.num_rows
            self._add(table)
        if payload.get("samples"):
            self.resources.add(payload["samples"])

    def _settle_target(self) -> None:
        """Find the backend process to sample: --target-pid, the embedded backend, or a loopback port."""
        if self.target_settled:
            return
        opts = self.environment.parsed_options
        pid: int | None = getattr(opts, "target_pid", None)
        source = "--target-pid"
        if pid is None:
            try:
                from compliance_loadtest.plugin.embedded import embedded_backend
            except ImportError:
                embedded = None
            else:
                embedded = embedded_backend()
            if embedded is not None:
                pid, source = int(embedded.pid), "embedded backend"
        if pid is None:
            host = self.environment.host or getattr(opts, "host", None)
            if not host:
                return  # not known yet (web UI): try again later
            address = target_address(host)
            if address is None or not is_loopback_host(address[0]):
                self.target_settled = True
                self.notes.append(f"target {host} is not on this machine's loopback: not sampled")
                return
            now = time.monotonic()
            if now - self.target_attempt < 5.0:
                return  # the port scan reads every process's sockets: not every second
            self.target_attempt = now
            pid = find_listening_pid(address[1])
            source = f"listening on port {address[1]}"
            if pid is None:
                return
        try:
            self.target = ProcessSampler(pid, rf.ROLE_TARGET, rf.ROLE_TARGET)
        except Exception as e:
            self.notes.append(f"target process {pid} ({source}) cannot be sampled: {e}")
        else:
            self.notes.append(f"target process {pid} ({source}) sampled")
        self.target_settled = True

    def _tick(self) -> None:
        while True:
            gevent.sleep(SAMPLE_INTERVAL_S)
            try:
                self._sample()
                self.take_local_rows()
                now = time.monotonic()
                # A part a second at first, later every ten (`part_interval_s`), or when enough rows wait.
                interval = part_interval_s(self.parts.parts_written)
                if self.pending_rows >= PART_MAX_ROWS or now - self.last_part >= interval:
                    self._write_part()
                if self.csv_writer is not None:
                    self.csv_writer.add_history()
                if now - self.last_resources >= RESOURCES_WRITE_INTERVAL_S:
                    self.last_resources = now
                    self._attempt(rf.RESOURCES_CSV, self.resources.write)
                    if self.csv_writer is not None:
                        self._attempt("Locust's CSV files", self.csv_writer.write)
                if self.is_master:
                    self._check_workers()
            except Exception:
                logger.exception("run output: periodic write failed")

    def _attempt(self, what: str, write: Any) -> bool:
        """Run `write`; a failed write is logged once (not at every retry) and reported False."""
        try:
            write()
        except OSError as e:
            message = rf.write_failure(what, e)
            if self.failing.get(what) != message:
                self.failing[what] = message
                logger.error("run output: %s; kept in memory and retried", message)
            return False
        if self.failing.pop(what, None) is not None:
            logger.info("run output: %s written after all", what)
        return True

    def _reserve_space(self) -> None:
        try:
            with self.reserve.open("wb") as f:
                f.write(bytes(RESERVE_BYTES))
        except OSError:
            self.reserve.unlink(missing_ok=True)

    def _sample(self) -> None:
        self._settle_target()
        samples = [s for s in (self.own.sample(), self.target.sample() if self.target else None) if s]
        self.resources.add(samples)

    def take_local_rows(self) -> None:
        """Move this process's own recorded requests to the rows waiting for the next part."""
        if len(self.recorder):
            self._add(self.recorder.take_table())

    def _add(self, table: pa.Table) -> None:
        self.pending.append(table)
        self.pending_rows += table.num_rows
        for listener in self.table_listeners:
            listener(table)

    def _write_part(self) -> None:
        """Write the waiting rows as a part; rows that fail to write stay waiting for the next attempt."""
        self.last_part = time.monotonic()
        if not self.pending_rows:
            return
        what = f"{rf.REQUESTS_DIR}/{self.parts.next_name}"
        if self._attempt(what, lambda: self.parts.write(self.pending)):
            self.pending, self.pending_rows = [], 0
        elif len(self.pending) > 1:
            # One table to retry: not the concatenation of every batch again at each attempt.
            self.pending = [pa.concat_tables(self.pending)]

    def _check_workers(self) -> None:
        now = time.monotonic()
        running = self.runner.state not in (STATE_INIT, STATE_STOPPED)
        for client_id, node in list(self.runner.clients.items()):
            seen = self.workers.setdefault(client_id, _WorkerSeen())
            if node.state == STATE_MISSING:
                self._mark_lost(client_id, "missing: no heartbeat")
            elif running and not seen.stopped and now - seen.last_report > REPORT_STALE_S:
                self._mark_lost(client_id, f"no report for {REPORT_STALE_S:.0f} s")

    def _mark_lost(self, client_id: str, reason: str) -> None:
        if client_id not in self.lost:
            self.lost[client_id] = reason
            logger.warning("run output: worker %s lost (%s); its last rows may be missing", client_id, reason)

    # --- the end -----------------------------------------------------------------------------------

    def on_quitting(self, environment: Any, **_kw: Any) -> None:
        if not self.exit_listener_added:
            # Added now, after every other quit listener, so it runs last.
            self.exit_listener_added = True
            environment.events.quit.add_listener(self._exit_if_a_write_failed)
        if not self.is_master:
            return
        if self.collecting:
            self.collected.wait(self._final_wait_s() + 5.0)
            return
        self.collecting = True
        try:
            self._collect_final_reports()
        except Exception:
            logger.exception("run output: collecting the workers' final reports failed")
            self.problems.append("collecting the workers' final reports failed")
        finally:
            self.collected.set()

    def _final_wait_s(self) -> float:
        return float(self.environment.stop_timeout or 0.0) + FINAL_REPORT_GRACE_S

    def _waiting_for(self) -> list[str]:
        return [
            cid
            for cid, node in self.runner.clients.items()
            if node.state != STATE_MISSING and not self.workers.setdefault(cid, _WorkerSeen()).stopped
        ]

    def _collect_final_reports(self) -> None:
        """Tell the workers to quit and read their final reports until all came or time is up.

        Locust's master stops reading half a second after sending quit; a worker still stopping its
        users reports later. Its messages wait in the socket: read and handle them as Locust would.
        """
        runner = self.runner
        self._check_workers()
        runner.quit()
        deadline = time.monotonic() + self._final_wait_s()
        while waiting := self._waiting_for():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                for cid in waiting:
                    self._mark_lost(cid, "no final report")
                return
            received = None
            with gevent.Timeout(min(remaining, 0.5), False):
                received = runner.server.recv_from_client()
            if received is not None:
                client_id, msg = received
                try:
                    runner.handle_message(client_id, msg)
                except Exception:
                    logger.exception("run output: handling %s from %s failed", msg.type, client_id)

    def on_quit(self, exit_code: int, **_kw: Any) -> None:
        """Locust has printed its final statistics: write everything and sum it up."""
        if self.collecting:
            self.collected.wait(self._final_wait_s() + 5.0)
        if self.finished:
            self.written.wait(60.0)
            return
        self.finished = True
        try:
            self._write_outputs(exit_code)
        finally:
            self.written.set()

    def _write_outputs(self, exit_code: int) -> None:
        self.tick_greenlet.kill(block=False)
        if self.ended_by is None:
            self.ended_by = "error" if exit_code == 2 and log.unhandled_greenlet_exception else "normal"
        self.locust_final = self.locust_figures()
        steps = (
            ("the request record", self._finish_record),
            (rf.RESOURCES_CSV, self._finish_resources),
            ("Locust's CSV files", self._finish_locust_csv),
            (rf.LOCUST_JSON, self._finish_locust_json),
            (rf.LOCUST_HTML, self._finish_locust_html),
            (rf.SUMMARY_JSON, self._write_summary),
        )
        for what, step in steps:
            if what == rf.SUMMARY_JSON:
                # The last two files say what happened: they get the space kept for them.
                self.reserve.unlink(missing_ok=True)
            try:
                step()
            except OSError as e:
                self._final_write_failed(rf.write_failure(what, e))
            except Exception as e:
                logger.exception("run output: writing %s failed", what)
                self.problems.append(f"writing {what} failed: {e}")
        for message in self.failing.values():
            self._final_write_failed(message)
        if self.write_failed:
            exit_code = EXIT_INVALID_RUN if exit_code == 0 else exit_code
        try:
            self.write_run_json(exit_code=exit_code)
        except OSError as e:
            self.write_failed = True
            logger.error("run output: %s", rf.write_failure(rf.RUN_JSON, e))

    def _final_write_failed(self, message: str) -> None:
        self.write_failed = True
        if message not in self.problems:
            self.problems.append(message)
            logger.error("run output: %s", message)

    def _exit_if_a_write_failed(self, exit_code: int, **_kw: Any) -> None:
        """Locust has decided its exit code before the outputs are written: a run whose outputs failed to
        write must not exit 0 (Locust's quit event lets a listener end the process with its own code)."""
        if self.write_failed and exit_code == 0:
            logger.error(
                "run output: exit code %d: the run's outputs failed to write (%s)",
                EXIT_INVALID_RUN,
                "; ".join(self.problems),
            )
            raise SystemExit(EXIT_INVALID_RUN)

    def _finish_record(self) -> None:
        self.take_local_rows()
        self._write_part()
        if self.pending_rows:
            message = self.failing.pop(f"{rf.REQUESTS_DIR}/{self.parts.next_name}", "")
            self._final_write_failed(f"{message}: {self.pending_rows} rows of the record not written")

    def _finish_resources(self) -> None:
        with contextlib.suppress(Exception):
            self._sample()
        self.failing.pop(rf.RESOURCES_CSV, None)
        self.resources.close()

    def _finish_locust_csv(self) -> None:
        # Locust's writer rewrites these every second, so the last second may be missing: write the final
        # state. Locust's own writer (--csv given) closes its files only after this event, so its files
        # are rewritten at exit, once it has; not when --json-file was given, since saving Locust's JSON
        # has emptied the per-entry statistics by then.
        if self.csv_writer is None:
            opts = self.environment.parsed_options
            prefix = opts.csv_prefix
            if prefix and not opts.json_file:
                writer = stats.StatsCSV(self.environment, stats.PERCENTILES_TO_REPORT)
                atexit.register(write_final_csv, writer, str(prefix))
            return
        self.failing.pop("Locust's CSV files", None)
        self.csv_writer.add_history()
        self.csv_writer.write()

    def _finish_locust_json(self) -> None:
        if self.write_json_file:
            save_stats_json(self.runner.stats, self.run_dir / rf.LOCUST_JSON)

    def _finish_locust_html(self) -> None:
        path = self.run_dir / rf.LOCUST_HTML
        if not self.write_html_file:
            # Locust writes its --html report only when its main loop ends, not after SIGTERM: fill in.
            named = str(self.environment.parsed_options.html_file)
            if "{" in named or Path(named).exists():
                return
            path = Path(named)
        html = get_html_report(self.environment, show_download_link=False)
        rf.write_atomically(path, html)

    def locust_figures(self) -> dict[str, Any]:
        """Locust's final counts, total and per entry, as its terminal summary shows them.

        Saving Locust's JSON empties the per-entry statistics (`serialize_stats` resets them), so this
        runs before locust.json is written; when Locust wrote its own `--json-file`, the entries come
        from that file.
        """
        s = self.runner.stats
        opts = self.environment.parsed_options
        entries: dict[tuple[str, str], tuple[int, int]] = {}
        if not self.write_json_file and opts.json_file and Path(f"{opts.json_file}.json").is_file():
            for e in json.loads(Path(f"{opts.json_file}.json").read_text(encoding="utf-8")):
                entries[(e.get("method") or "", e["name"])] = (e["num_requests"], e["num_failures"])
        else:
            for e in s.entries.values():
                if e.num_requests or e.num_failures:
                    entries[(e.method or "", e.name)] = (e.num_requests, e.num_failures)
        return {"total": (s.total.num_requests, s.total.num_failures), "entries": entries}

    def _write_summary(self) -> None:
        summary = self.parts.summary()
        locust_figures = self.locust_final
        lc, lf = locust_figures["total"]
        summary["locust_total"] = {"count": lc, "failures": lf}
        if not self.record:
            summary["agrees_with_locust"] = None
            summary["note"] = "the request record was off (--no-request-record): totals are empty"
        elif self.stats_reset:
            summary["agrees_with_locust"] = None
            summary["note"] = "Locust's statistics were reset during the run; the record was not"
        else:
            ours = {(e["request_type"], e["name"]): (e["count"], e["failures"]) for e in summary["entries"]}
            theirs = locust_figures["entries"]
            differ = sorted(
                k for k in set(ours) | set(theirs) if ours.get(k, (0, 0)) != theirs.get(k, (0, 0))
            )
            summary["agrees_with_locust"] = not differ and (lc, lf) == (
                summary["total"]["count"],
                summary["total"]["failures"],
            )
            if differ:
                summary["differences"] = [
                    {
                        "request_type": t,
                        "name": n,
                        "record": dict(zip(("count", "failures"), ours.get((t, n), (0, 0)), strict=True)),
                        "locust": dict(zip(("count", "failures"), theirs.get((t, n), (0, 0)), strict=True)),
                    }
                    for t, n in differ
                ]
            if not summary["agrees_with_locust"]:
                self.problems.append("the record's totals differ from Locust's")
        self.summary = summary
        write_json(self.run_dir / rf.SUMMARY_JSON, summary)

    def run_info(self, exit_code: int | None) -> RunInfo:
        """What run.json says now: at the start (`exit_code` None) or at the end."""
        opts = self.environment.parsed_options
        target = self.resources.target()
        ended = exit_code is not None
        host = self.environment.host or getattr(opts, "host", None)
        agrees = getattr(self, "summary", {}).get("agrees_with_locust")
        saturated = self.resources.saturated_workers()
        return RunInfo(
            started_at=utc_iso(self.test_started or self.started),
            ended_at=utc_iso(time.time()) if ended else None,
            ended_by=self.ended_by if ended else None,
            exit_code=exit_code,
            stopped_by=self.stopped_by,
            host=redact_url(host) if host else None,
            user_classes=tuple(sorted(c.__name__ for c in self.environment.user_classes)),
            locust_version=locust.__version__,
            role=self.role,
            options=redacted_options(opts),
            workers=Workers(
                expected=self.expected_workers,
                seen=tuple(sorted(self.workers)),
                lost=tuple(sorted(self.lost)),
                lost_reasons=dict(sorted(self.lost.items())),
                rows={cid: w.rows for cid, w in sorted(self.workers.items())},
            ),
            load_generator_saturated=bool(saturated),
            saturated_load_generators=tuple(saturated),
            load_profile=getattr(opts, "load_profile", "") or None,
            # The analysis judges the target's memory as a share of the machine's ("> 85% memory").
            system=System(
                memory_total_mb=round(psutil.virtual_memory().total / 2**20, 1),
                cpu_count=psutil.cpu_count(),
            ),
            record=Record(
                enabled=self.record,
                rows=self.parts.rows_written,
                parts=self.parts.parts_written,
                agrees_with_locust=agrees,
                user_classes=dict(sorted(self.parts.user_classes.items())),
            ),
            resources=Resources(
                target=target,
                load_generators=tuple(self.resources.load_generators()),
                memory_increase_mb=target.rss_increase_mb if target else None,
            ),
            complete=ended and not self.lost and not self.problems,
            problems=tuple(self.problems),
            notes=tuple(self.notes),
            files=tuple(self._files()),
        )

    def write_run_json(self, exit_code: int | None) -> None:
        write_json(self.run_dir / rf.RUN_JSON, self.run_info(exit_code).to_json())

    def _files(self) -> list[str]:
        names = {rf.RUN_JSON}
        for p in self.run_dir.rglob("*"):
            if p.is_file() and not p.name.startswith("."):
                names.add(p.relative_to(self.run_dir).as_posix())
        return sorted(names)


def on_init(environment: Any, runner: Any = None, **_kw: Any) -> None:
    """Start the run folder's writer (master or local). A worker's side starts at test_start instead
    (`worker_on_test_start`): only then does a worker know whether its master has a run folder."""
    if runner is None or isinstance(runner, WorkerRunner):
        return
    opts = environment.parsed_options
    run_dir = getattr(opts, "run_dir", "") if opts is not None else ""
    if not run_dir:
        return
    prepare_run_dir(Path(run_dir))
    RUN_OUTPUTS[environment] = RunOutput(environment, runner, Path(run_dir))


RUN_OUTPUTS: weakref.WeakKeyDictionary[Any, RunOutput] = weakref.WeakKeyDictionary()
"""The run folder's writer of each environment that has one (the live verdict reads its tables)."""
