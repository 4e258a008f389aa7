"""What a run folder with the exact request record costs, in requests per CPU second, next to bare Locust.

Locust processes with 20 users each (wait 0) hammer a trivial nginx endpoint on loopback (`GET /ok`
answers `{"ok":true}`), one process per condition:
  - `bare`: a bare `FastHttpUser` sending the same request (bearer header included, checking nothing),
  - `library`: the library's user (`self.call("GET", "bench.ok", read=False)`), no run folder,
  - `record`: the library's user with `--run-dir` and the exact request record,
  - `no-record` (on request): the library's user with `--run-dir --no-request-record`.
In each round the conditions run at the same time, started in an order rotated from round to round, and
are measured over the same wall-clock window after a warm-up (see _side_by_side.py): the first seconds
and all that a run writes after the window (its final record part, the summary) are left out; what is
measured is what the record costs while requests are made. With two or more CPUs, nginx runs on CPU 0 and
every Locust process on CPU 1 (`taskset`), so they share that core and whatever the machine does hits
them alike; what a run does once a second (its parquet part, the resource sample) then weighs as many
times more against its requests as there are runs on the core, three by default, so the record is
measured on the conservative side (bench_scenarios' `record on` shares a core between two). Run one after
another, as this benchmark used to, the same condition moved by up to a third from run to run on this
shared machine and the record/bare ratio spread from 0.78 to 1.17.

The goal, `record / bare` >= 0.95 (the "lean load generator" goal), is judged on requests per CPU second
of each Locust process over the window: a saturated load generator's requests/s is its requests per CPU
second times the CPU it gets, and sharing a core the runs get about equal shares, but not exactly, which
this takes out. Requests/s over the same window is printed next to it, not judged. Prints each run's
requests/s, CPU microseconds per request and CPU use (cores; the runs on one core should add up to ~1.00,
or they were not CPU-bound), then for each ratio the median over the rounds, its interquartile range (the
spread) and min-max; for the goal, whether the median met it ('below goal' when not) and whether the
spread is smaller than the effect measured (1 - median), and whether the lower quartile is at or above
the goal too. Exit code 0 when the goal was met.

    python bench/bench_record.py [--rounds 8] [--seconds 10] [--warmup 8] [--users 20] [--no-pin]
        [--conditions bare,library,record,no-record]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from _nginx import JSON_OK, LOGIN_OK, start_nginx, stop_nginx  # bench/ is the script's folder
from _side_by_side import LOCUSTFILE, RUN_DIR, Side, Window, run_side_by_side, spread, verdict

CONDITIONS = {
    "bare": Side("bare", "BareUser"),
    "library": Side("library", "LibraryUser"),
    "record": Side("record", "LibraryUser", ("--run-dir", RUN_DIR)),
    "no-record": Side("no-record", "LibraryUser", ("--run-dir", RUN_DIR, "--no-request-record")),
}
# (numerator, denominator, goal or None): the goal is the issue's, never looser.
RATIOS = (("record", "bare", 0.95), ("library", "bare", None), ("no-record", "bare", None))
LOCUST_CPU, NGINX_CPU = 1, 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10, help="the measured window of each round")
    parser.add_argument("--warmup", type=float, default=8, help="from the start to the window")
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--conditions", default="bare,library,record")
    parser.add_argument("--no-pin", action="store_true", help="let the scheduler place Locust and nginx")
    args = parser.parse_args()
    conditions = [c for c in args.conditions.split(",") if c]
    unknown = sorted(set(conditions) - set(CONDITIONS))
    if unknown or "bare" not in conditions:
        what = ", ".join(unknown) or "bare is missing"
        parser.error(f"--conditions: {what}; known: {', '.join(CONDITIONS)}")
    if args.rounds < 2:
        parser.error("--rounds: at least 2, for a spread")
    pin = not args.no_pin and (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None
    runs: dict[str, list[Window]] = {c: [] for c in conditions}
    work = Path(tempfile.mkdtemp(prefix="bench-record-"))
    nginx, host = start_nginx(work, JSON_OK, {"/api/auth/login": LOGIN_OK}, cpu=NGINX_CPU if pin else None)
    placement = f"Locust on CPU {LOCUST_CPU}, nginx on CPU {NGINX_CPU}" if pin else "not pinned"
    print(f"{args.rounds} rounds, {args.users} users per run, {args.seconds} s window after {args.warmup} s, "
          f"{', '.join(conditions)} side by side, {host}/ok, {placement}", flush=True)  # fmt: skip
    try:
        locustfile = work / "bench_locustfile.py"
        locustfile.write_text(LOCUSTFILE)
        for n in range(args.rounds):
            k = n % len(conditions)
            order = conditions[k:] + conditions[:k]
            windows = run_side_by_side(
                locustfile, host, [CONDITIONS[c] for c in order], users=args.users, seconds=args.seconds,
                warmup=args.warmup, work=work, cpu=LOCUST_CPU if pin else None, tag=f"round-{n + 1}",
            )  # fmt: skip
            for c, w in zip(order, windows, strict=True):
                runs[c].append(w)
            print(
                f"round {n + 1}: "
                + "   ".join(
                    f"{c} {w.rps:5.0f} req/s {1e6 / w.per_cpu_second:5.1f} us CPU/request "
                    f"({w.cores:.2f} cores)"
                    for c, w in ((c, runs[c][-1]) for c in conditions)
                )
                + f"   together {sum(w.cores for w in windows):.2f} cores",
                flush=True,
            )
    finally:
        stop_nginx(nginx)
        shutil.rmtree(work, ignore_errors=True)
    for c in conditions:
        print(
            f"{c:>9}: req/s {spread([w.rps for w in runs[c]], '.0f')}\n{'':>9}  "
            f"us CPU per request {spread([1e6 / w.per_cpu_second for w in runs[c]], '.1f')}"
        )
    met = True
    for a, b, goal in RATIOS:
        if a not in runs:
            continue
        by_cpu = [x.per_cpu_second / y.per_cpu_second for x, y in zip(runs[a], runs[b], strict=True)]
        by_rps = [x.rps / y.rps for x, y in zip(runs[a], runs[b], strict=True)]
        judged = " (judged)" if goal is not None else ""
        print(f"{a} / {b}: requests per CPU second{judged} {spread(by_cpu)}")
        print(f"{'':>{len(a) + len(b) + 3}}  requests/s (same window, not judged) {spread(by_rps)}")
        if goal is not None:
            ok, lines = verdict(by_cpu, goal)
            met = met and ok
            for line in lines:
                print(f"  {line}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
