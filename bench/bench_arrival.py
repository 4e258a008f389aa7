"""Closed model against open model (arrival rate) through the same backend stall: coordinated omission.

Three Locust runs, one after the other, against one reference backend on loopback, with the same
user class (one GET /health per iteration) and the same nominal load of RATE requests per second:
  - `closed`: USERS users, each pacing itself to one request every USERS / RATE seconds
    (`constant_pacing`), Locust's usual model,
  - `open`: an arrival-rate profile at RATE iterations per second served by a pool of POOL users
    (ample for the stall),
  - `open-short`: the same profile served by only USERS users.
STALL seconds into the middle of each run's load, the backend answers /health STALL_MS late for
STALL seconds (admin faults). From each run's exact record the script prints the requests actually
sent per second before and during the stall and the p95 latency as measured; for the open runs also
the p95 corrected from the intended start and the dropped iterations. Then the ratios: requests sent
during the stall / nominal (the closed model backs off and hides the slowness; the open model keeps
its schedule), and corrected p95 / measured p95 (large when the pool is short: the wait for a free
user is latency a real user would have seen).

    python bench/bench_arrival.py [--rate 20] [--users 10] [--pool 40] [--seconds 12] [--stall 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from compliance_loadtest import locustfile_path
from tests.backend_process import Backend, run_backend

LOCUSTFILE = """
import locust_scenarios  # noqa: F401  (installs the library's options and listeners)
from locust import constant_pacing, task
from locust.contrib.fasthttp import FastHttpUser


class HealthUser(FastHttpUser):
    wait_time = constant_pacing({pacing})

    @task
    def health(self):
        self.client.get("/health")
"""


def run_once(label: str, work: Path, backend: Backend, args: argparse.Namespace, extra: list[str]) -> Path:
    run_dir = work / f"{label}-run"
    cmd = [
        sys.executable, "-m", "locust", "-f", f"{locustfile_path()},{work / 'health_user.py'}", "HealthUser",
        "--headless", "--host", backend.url, "--run-dir", str(run_dir), "--only-summary",
        "--stop-timeout", "2",
        *extra,
    ]  # fmt: skip
    log = (work / f"{label}.log").open("wb")
    backend.request("DELETE", "/admin/requests")
    proc = subprocess.Popen(cmd, cwd=work, stdout=log, stderr=subprocess.STDOUT)

    def stall() -> None:
        # the stall's place is measured from the run's first /health request, as in summarise()
        while (
            proc.poll() is None
            and backend.request("GET", "/admin/requests")[1].get("routes", {}).get("GET /health", 0) == 0
        ):
            time.sleep(0.05)
        time.sleep((args.seconds - args.stall) / 2)
        backend.request(
            "PUT", "/admin/faults", {"faults": [{"path": "/health", "latency_ms": args.stall_ms}]}
        )
        time.sleep(args.stall)
        backend.request("DELETE", "/admin/faults")

    threading.Thread(target=stall, daemon=True).start()
    proc.wait(timeout=args.seconds + 90)
    log.close()
    if not (run_dir / "requests").is_dir():
        raise SystemExit(f"{label} run wrote no record:\n{(work / f'{label}.log').read_text()[-3000:]}")
    return run_dir


def summarise(label: str, run_dir: Path, args: argparse.Namespace) -> dict[str, float]:
    record = pd.read_parquet(run_dir / "requests")
    sent = record[record["request_type"] == "GET"]
    t0 = sent["timestamp"].min()
    # the stall's place in this run, measured from the first request (the clock starts with the load)
    begin = t0 + (args.seconds - args.stall) / 2
    during = sent[(sent["timestamp"] >= begin) & (sent["timestamp"] < begin + args.stall)]
    before = sent[(sent["timestamp"] >= t0 + 1) & (sent["timestamp"] < begin)]
    out = {
        "rate_before": len(before) / max(begin - t0 - 1, 1e-9),
        "rate_during": len(during) / args.stall,
        "p95_measured": float(sent["response_time_ms"].quantile(0.95)),
    }
    corrected = record[record["request_type"] == "GET (corrected)"]
    if len(corrected):
        out["p95_corrected"] = float(corrected["response_time_ms"].quantile(0.95))
        report = json.loads((run_dir / "arrival.json").read_text())
        out["dropped"] = float(sum(s["dropped"] for s in report["stages"]))
    print(
        f"{label:10}  sent/s before {out['rate_before']:6.1f}  during stall {out['rate_during']:6.1f}  "
        f"p95 measured {out['p95_measured']:7.0f} ms"
        + (
            f"  p95 corrected {out['p95_corrected']:7.0f} ms  dropped {out['dropped']:.0f}"
            if "p95_corrected" in out
            else ""
        )
    )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--stall", type=float, default=3.0)
    parser.add_argument("--stall-ms", type=float, default=1000.0)
    parser.add_argument("--pool", type=int, default=40)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-arrival-"))
    try:
        (work / "health_user.py").write_text(LOCUSTFILE.format(pacing=args.users / args.rate))
        print(
            f"nominal {args.rate:g} req/s, {args.users} users (open: pool {args.pool} and {args.users}), "
            f"{args.seconds:g} s per run, /health {args.stall_ms:g} ms late for {args.stall:g} s mid-run"
        )
        results = {}
        with run_backend(work) as backend:
            users = str(args.users)
            closed_args = ["-u", users, "-r", users, "-t", f"{round(args.seconds)}s"]
            results["closed"] = summarise(
                "closed", run_once("closed", work, backend, args, closed_args), args
            )
            for label, pool in (("open", args.pool), ("open-short", args.users)):
                profile = work / f"{label}.yaml"
                profile.write_text(
                    f"model: arrival\nworkflow: HealthUser\nmax_users: {pool}\nmax_start_delay: 1.0\n"
                    f"stages:\n  - {{duration: {args.seconds}, rate: {args.rate}}}\n"
                )
                run_dir = run_once(label, work, backend, args, ["--load-profile", str(profile)])
                results[label] = summarise(label, run_dir, args)
        print(
            "sent during the stall / nominal: "
            + ", ".join(f"{k} {v['rate_during'] / args.rate:.2f}" for k, v in results.items())
        )
        print(
            "p95 corrected / measured: "
            + ", ".join(
                f"{k} {v['p95_corrected'] / v['p95_measured']:.2f}"
                for k, v in results.items()
                if k != "closed"
            )
        )
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
