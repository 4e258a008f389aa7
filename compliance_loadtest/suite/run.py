"""The suite run itself: the reference backend (unless `--host`), one headless Locust master and N
workers on loopback, progress while they run, then `python -m analysis` on the run folder.

`run_suite` carries out a `SuitePlan`; its exit code is the analysis's (0 pass, 1 a threshold or
regression failed), 3 when the run is not valid evidence, 128 + N after signal N. What cannot be done
raises (`SuiteUsageError`, `SuiteRunError`); the command (`suite.command.main`) maps those to exit codes.

This module must not import Locust: importing Locust monkey-patches the process with gevent, and this
process only starts and watches others.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from compliance_loadtest import locustfile_path
from compliance_loadtest.backend import BackendProcess, launch_backend
from compliance_loadtest.capacity import describe_goodput
from compliance_loadtest.errors import EXIT_INVALID_RUN, BackendStartError, SuiteRunError, SuiteUsageError
from compliance_loadtest.run_folder import CAPACITY_JSON, CAPACITY_SVG
from compliance_loadtest.suite.plan import SuitePlan
from compliance_loadtest.suite.processes import LOOPBACK, Children, Signals, child_env, free_port
from compliance_loadtest.suite.progress import Progress, say

__all__ = ["available_user_classes", "run_suite"]

BACKEND_READY_TIMEOUT_S = 90.0
TARGET_CONNECT_TIMEOUT_S = 5.0
WORKERS_CONNECT_TIMEOUT_S = 90
MASTER_STOP_TIMEOUT_S = 30.0
WORKER_STOP_TIMEOUT_S = 15.0
# A run is ended by Locust itself (-t, or the profile's last stage); this is the suite's own bound on
# top of that, for a master that never returns.
RUN_GRACE_S = 120.0


def _start_backend(
    children: Children, signals: Signals, data_dir: Path, database_url: str | None
) -> BackendProcess:
    """Start the reference backend on a free loopback port, with demo data, and wait until it serves.

    The suite starts it rather than letting the master do so, because then the backend is known
    before any Locust process exists (a backend that cannot start is reported as such), its database
    can be handed to the workers, which are separate processes, not forks of the master, and it is
    stopped by the suite after the workers, however the master ended.
    """
    try:
        backend = launch_backend(
            data_dir=data_dir,
            database_url=database_url,
            demo_data=True,
            environ=child_env({}),
            log_path=children.log_dir / "backend.log",
            ready_timeout=BACKEND_READY_TIMEOUT_S,
            check=signals.check,  # a signal while it starts: it is stopped, and so is the suite
        )
    except BackendStartError as exc:
        # No backend, no run: for the suite that is an invalid run (3), not a failed threshold (1).
        raise SuiteRunError(str(exc)) from exc
    children.adopt("backend", backend.process, backend.log_path)
    return backend


def check_target_reachable(host: str) -> None:
    """Open one TCP connection to `--host`: a target with nothing listening is an invalid run (3) said
    plainly ("connection refused"), not a minute of failed requests ending in a threshold's FAIL."""
    parts = urlsplit(host)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return  # Locust refuses a bad --host itself, naming it
    if not parts.hostname:
        return
    try:
        socket.create_connection((parts.hostname, port), timeout=TARGET_CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        cause = (exc.strerror or str(exc) or type(exc).__name__).lower()
        raise SuiteRunError(
            f"target unreachable: {parts.hostname}:{port} ({cause}); is the backend running at --host?"
        ) from None


def available_user_classes() -> list[str]:
    """The user classes the scenarios define, as `locust -f <scenarios> --list` prints them."""
    args = [sys.executable, "-m", "locust", "-f", locustfile_path(), "--list"]
    result = subprocess.run(args, capture_output=True, text=True, timeout=120, env=child_env({}), check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-15:])
        raise SuiteRunError(f"the scenarios in {locustfile_path()} could not be loaded:\n{tail}")
    return [ln.strip() for ln in result.stdout.splitlines()[1:] if ln.strip()]


def _check_user_classes(plan: SuitePlan) -> None:
    available = available_user_classes()
    for category in plan.categories:
        if missing := [name for name in category.user_classes if name not in available]:
            raise SuiteUsageError(
                f"category {category.key!r} ({category.title}) needs user classes {', '.join(missing)}, "
                f"which the scenarios in {locustfile_path()} do not define (they define: "
                f"{', '.join(available)}); --exclude {category.key} to run without it"
            )
    if plan.profile is not None and (missing := sorted(plan.profile.class_names() - set(available))):
        raise SuiteUsageError(
            f"--load-profile {plan.load_profile}: names unknown user classes {', '.join(missing)}"
        )


def _master_args(plan: SuitePlan, host: str, port: int, target_pid: int | None) -> list[str]:
    run_dir = plan.run_dir
    args = [sys.executable, "-m", "locust", "-f", locustfile_path(), "--headless", "--master"]
    args += ["--master-bind-host", LOOPBACK, "--master-bind-port", str(port)]
    args += ["--expect-workers", str(plan.workers)]
    args += ["--expect-workers-max-wait", str(WORKERS_CONNECT_TIMEOUT_S)]
    args += ["--host", host, "--run-dir", str(run_dir)]
    # No --csv, --json-file or --html: the run folder's writer writes Locust's files there itself, each
    # atomically (Locust's own writers write in place, and a full disk leaves them cut).
    args += ["--only-summary"]
    if plan.load_profile:
        args += ["--load-profile", plan.load_profile, "--profile-time-scale", f"{plan.profile_time_scale:g}"]
    else:
        args += ["--users", str(plan.users), "--spawn-rate", f"{plan.spawn_rate:g}"]
    if plan.run_time_s is not None:
        args += ["--run-time", f"{plan.run_time_s}s"]
    if target_pid is not None:
        args += ["--target-pid", str(target_pid)]
    if plan.config.path is not None:
        args += ["--benchmark-config", str(plan.config.path)]
    return [*args, *plan.locust_args, *plan.user_classes]


def _worker_args(plan: SuitePlan, port: int) -> list[str]:
    """A worker names the master's user classes too: Locust sends a worker the users to start but not
    the class list, and classes that are left out unless named (the benchmark users) must be there."""
    args = [sys.executable, "-m", "locust", "-f", locustfile_path(), "--worker"]
    return [*args, "--master-host", LOOPBACK, "--master-port", str(port), *plan.user_classes]


def _run_locust(
    plan: SuitePlan,
    host: str,
    children: Children,
    signals: Signals,
    target_pid: int | None,
    db_url: str | None,
) -> list[str]:
    """Run master + workers until the master ends; return what went wrong with the workers (if anything)."""
    port = free_port()
    # The master hands its options (the database URL too) to the workers when the test starts.
    env = child_env({"CGPT_DB_URL": db_url} if db_url else {}, drop=("CGPT_EMBEDDED_BACKEND",))
    master = children.start("master", _master_args(plan, host, port, target_pid), env)
    workers = [
        children.start(f"worker-{i}", _worker_args(plan, port), env) for i in range(1, plan.workers + 1)
    ]
    say(
        f"master pid {master.pid} on {LOOPBACK}:{port}, {len(workers)} worker(s) "
        f"(pids {', '.join(str(w.pid) for w in workers)}); logs in {children.log_dir}"
    )
    progress = Progress(plan.run_dir / "locust_stats_history.csv", plan.load_seconds, plan.profile)
    problems: list[str] = []
    bound = (plan.load_seconds or 0) + WORKERS_CONNECT_TIMEOUT_S + RUN_GRACE_S
    started = time.monotonic()
    while master.alive():
        signals.check()
        for w in workers:
            # A worker ends with code 0 when the master tells it to quit; any other end is a loss.
            code = w.process.poll()
            if code not in (None, 0) and not any(p.startswith(f"{w.role} ") for p in problems):
                problems.append(f"{w.role} (pid {w.pid}) ended during the run with code {code}")
                say(f"{problems[-1]}; its log: {w.log_path}")
        if all(not w.alive() for w in workers) and progress.load_started is None:
            say("every worker ended before the load started; stopping the master")
            children.stop(master, MASTER_STOP_TIMEOUT_S)
            break
        if time.monotonic() - started > bound:
            problems.append(f"the master had not ended {bound:.0f}s after it started")
            say(f"{problems[-1]}: stopping it")
            children.stop(master, MASTER_STOP_TIMEOUT_S)
            break
        if line := progress.line(time.time()):
            say(line)
        children.remember_descendants()
        time.sleep(0.25)
    code = master.process.wait()
    # The master tells the workers to quit as it ends; give them a moment, then make sure.
    for w in workers:
        children.stop(w, WORKER_STOP_TIMEOUT_S)
    say(f"master ended with code {code}")
    if code == 2 and not progress.load_ever_ran():
        # Locust's own usage errors (and the library's bad-input errors) end a run with 2 before it starts.
        raise SuiteUsageError(
            f"Locust refused the run (exit code 2); end of the master's log ({master.log_path}):\n"
            + master.log_tail()
        )
    if code != 0 and not progress.load_ever_ran():
        # e.g. the workers never all connected: there is no run to analyse.
        raise SuiteRunError(
            f"the master ended with code {code} before any load ran; end of its log ({master.log_path}):\n"
            + master.log_tail()
        )
    if code not in (0, 1):
        say(f"end of the master's log ({master.log_path}):\n{master.log_tail()}")
    return problems


def _analysis_args(plan: SuitePlan, out_dir: Path) -> list[str]:
    """`python -m analysis RUN`, with the thresholds, the seed config's thresholds block, the baseline."""
    args = [sys.executable, "-m", "analysis", str(plan.run_dir), "--out", str(out_dir)]
    if plan.thresholds is not None:
        args += ["--thresholds", str(plan.thresholds)]
    if plan.config.path is not None:
        args += ["--config", str(plan.config.path)]
    if plan.baseline is not None:
        args += ["--baseline", str(plan.baseline)]
    if plan.benchmark_compare is not None:
        # The seed compared benchmark files; the analysis compares runs: a run holding just that file.
        baseline = plan.run_dir / "benchmark-baseline"
        baseline.mkdir(exist_ok=True)
        shutil.copyfile(plan.benchmark_compare, baseline / "benchmark_results.json")
        args += ["--baseline", str(baseline)]
    return args


def _say_capacity(plan: SuitePlan) -> None:
    """A capacity profile's answer, as soon as the load is over: the sustained rate (or why there is
    none) and where its figures and chart are."""
    path = plan.run_dir / CAPACITY_JSON
    if plan.profile is None or plan.profile.capacity is None:
        return
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        say(f"the capacity search wrote no readable {CAPACITY_JSON}: see the master's log")
        return
    if not result.get("valid"):
        say("capacity search INVALID: " + "; ".join(result.get("invalid_reasons") or []))
    else:
        rate = result.get("sustained_rate")
        first = result.get("first_broken") or {}
        line = f"capacity of {result.get('workflow')}: sustained rate {rate:g} iterations/s"
        if result.get("at_ceiling"):
            line += " (the ceiling: the true capacity is higher)"
        if first:
            line += f"; first broken at {first.get('target_rate'):g}/s by {first.get('rule')}"
        say(line)
    for where, key in (("at the sustained rate", "sustained_rate"), ("at the knee", "knee_rate")):
        if (goodput := _goodput_at(result, result.get(key))) is not None:
            say(f"  {where}, {goodput}")
    say(f"capacity figures in {path}, chart in {plan.run_dir / CAPACITY_SVG}")


def _goodput_at(result: dict[str, Any], rate: object) -> str | None:
    """The goodput of the step at `rate`, per journey step, as `describe_goodput` words it."""
    if not isinstance(rate, int | float) or not rate:
        return None
    steps = [s for s in result.get("steps") or [] if isinstance(s, dict)]
    step = next((s for s in steps if abs(float(s.get("target_rate") or 0) - rate) < 1e-3), None)
    text = describe_goodput(step) if step is not None else None
    return f"{rate:g}/s: {text}" if text else None


def run_suite(plan: SuitePlan) -> int:
    """Carry out a plan; the exit code is the analysis's, 3 when the run is not valid evidence, 128 + N
    after signal N. Raises SuiteUsageError / SuiteRunError when no run can be made."""
    if importlib.util.find_spec("analysis.__main__") is None:
        raise SuiteUsageError("the analysis package is not installed (pip install compliance-loadtest)")
    if plan.host is not None:
        check_target_reachable(plan.host)
    _check_user_classes(plan)
    plan.run_dir.mkdir(parents=True, exist_ok=True)
    signals = Signals()
    children = Children(plan.run_dir / "logs", forced=lambda: signals.forced)
    say(
        f"run folder {plan.run_dir}; categories: {', '.join(c.title for c in plan.categories)}; "
        f"user classes: {', '.join(plan.user_classes)}"
    )
    with signals, tempfile.TemporaryDirectory(prefix="compliance-suite-") as data_dir:
        try:
            host, target_pid, db_url = plan.host, None, plan.db_url
            if host is None:
                say("starting the reference backend")
                backend = _start_backend(children, signals, Path(data_dir), plan.backend_database_url)
                host, target_pid, db_url = backend.url, backend.pid, db_url or backend.database_url
                say(f"reference backend ready at {host} (pid {backend.pid})")
            problems = _run_locust(plan, host, children, signals, target_pid, db_url)
        except KeyboardInterrupt:
            signum = signals.received or signal.SIGINT
            say(f"{signal.Signals(signum).name} received: stopping the master, the workers and the backend")
            master = next((c for c in children.started if c.role == "master"), None)
            if master is not None and not signals.forced:
                # The same signal: the master records how the run ended (run.json's ended_by).
                children.stop(master, MASTER_STOP_TIMEOUT_S, sig=signum)
            children.stop_all(force=signals.forced)
            say(f"stopped; what was written is in {plan.run_dir} (an interrupted run gets no verdict)")
            return 128 + int(signum)
        finally:
            children.stop_all()

    _say_capacity(plan)
    say("running the analysis")
    analysis = subprocess.Popen(_analysis_args(plan, plan.run_dir / "report"))
    try:
        code = analysis.wait()
    except KeyboardInterrupt:  # Ctrl-C reaches the analysis too (same process group): let it end
        analysis.wait()
        say(f"interrupted during the analysis; the run folder is {plan.run_dir}")
        return 128 + int(signal.SIGINT)
    if problems and code in (0, 1):
        say("the run is not valid evidence, whatever the thresholds say: " + "; ".join(problems))
        code = EXIT_INVALID_RUN
    say(f"exit code {code}")
    return code
