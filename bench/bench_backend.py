"""Throughput and latency of the reference backend's main endpoints, on SQLite with 100k evidence rows.

    python bench/bench_backend.py [--evidence 100000] [--users 20] [--seconds 8] [--only login,search]

Seeds a fresh SQLite database (timed), starts the backend with no simulated model latency, then for
each endpoint drives `--users` concurrent Locust FastHttpUsers on loopback for `--seconds` (after the
users have logged in and warmed up) and prints requests per second and median / p95 latency, plus
the CPU the backend and the load generator used, so a saturated load generator is visible.

Each load run is a separate process (`--drive`), because importing Locust patches the process with
gevent; this parent only seeds, starts and samples. Not a test: nothing here asserts timings.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from compliance_loadtest.backend import launch_backend  # noqa: E402  (after the path above)
from compliance_loadtest.errors import BackendStartError, exit_code_for  # noqa: E402

ENDPOINTS = [
    "login",
    "evidence list page",
    "evidence/[id]",
    "search",
    "stats",
    "create evidence",
    "user dashboard",
    "compliance status",
    "chat send",
]


# -- the load generator (child process) ----------------------------------------------------------


def drive(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one endpoint's load in this process and return its figures (imports Locust: child only)."""
    import random
    import resource
    from urllib.parse import quote

    import gevent
    from locust import FastHttpUser, constant, events, task
    from locust.env import Environment

    endpoint: str = spec["endpoint"]
    logins: list[str] = spec["emails"]
    password: str = spec["password"]
    queries = ["security", "access review", "encryption", "backup policy", "incident response", "vendor risk"]

    class Client(FastHttpUser):
        host = spec["url"]
        wait_time = constant(0)
        network_timeout = 30.0
        connection_timeout = 10.0

        def on_start(self) -> None:
            self.email = logins[id(self) % len(logins)]
            r = self.client.post(
                "/api/auth/login", json={"email": self.email, "password": password}, name="setup"
            )
            self.headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
            page = self.client.get("/api/evidence?page_size=100", headers=self.headers, name="setup").json()
            self.ids = [row["id"] for row in page["results"]]

        @task
        def hit(self) -> None:
            h, c = self.headers, self.client
            if endpoint == "login":
                c.post("/api/auth/login", json={"email": self.email, "password": password}, name=endpoint)
            elif endpoint == "evidence list page":
                c.get(f"/api/evidence?page={random.randint(1, 50)}&page_size=20", headers=h, name=endpoint)
            elif endpoint == "evidence/[id]":
                c.get(f"/api/evidence/{random.choice(self.ids)}", headers=h, name=endpoint)
            elif endpoint == "search":
                q = quote(random.choice(queries))
                c.get(f"/api/evidence/search?q={q}&page=1&page_size=20", headers=h, name=endpoint)
            elif endpoint == "stats":
                c.get("/api/evidence/stats", headers=h, name=endpoint)
            elif endpoint == "create evidence":
                body = {
                    "title": "Bench evidence",
                    "description": "load test item with security notes",
                    "evidence_type": "document",
                    "framework_mappings": ["SOC2.CC6.1"],
                    "tags": ["bench"],
                }
                c.post("/api/evidence", json=body, headers=h, name=endpoint)
            elif endpoint == "user dashboard":
                c.get("/api/users/dashboard", headers=h, name=endpoint)
            elif endpoint == "compliance status":
                c.get("/api/compliance/status", headers=h, name=endpoint)
            elif endpoint == "chat send":
                c.post(
                    "/api/chat/send",
                    json={"message": f"How do we evidence {random.choice(queries)}?"},
                    headers=h,
                    name=endpoint,
                )

    env = Environment(user_classes=[Client], events=events)
    runner = env.create_local_runner()
    runner.start(spec["users"], spawn_rate=spec["users"] * 10)
    if runner.spawning_greenlet is not None:
        runner.spawning_greenlet.join()
    gevent.sleep(1.0)  # every user has logged in and warmed its connection
    env.stats.reset_all()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    gevent.sleep(spec["seconds"])
    elapsed = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    entry = env.stats.get(
        endpoint, "POST" if endpoint in ("login", "create evidence", "chat send") else "GET"
    )
    figures = {
        "endpoint": endpoint,
        "requests": entry.num_requests,
        "failures": entry.num_failures,
        "rps": entry.num_requests / elapsed,
        "median_ms": entry.get_response_time_percentile(0.5) if entry.num_requests else None,
        "p95_ms": entry.get_response_time_percentile(0.95) if entry.num_requests else None,
        "loadgen_cpu": ((cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)) / elapsed,
        "errors": [str(e.error)[:120] for e in env.runner.errors.values()][:3] if env.runner else [],
    }
    runner.quit()
    return figures


# -- the parent: seed, serve, run each endpoint, print the table ---------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--evidence", type=int, default=100_000)
    parser.add_argument("--orgs", type=int, default=10)
    parser.add_argument("--users", type=int, default=20, help="concurrent clients (default 20)")
    parser.add_argument(
        "--seconds", type=float, default=8.0, help="measured seconds per endpoint (default 8)"
    )
    parser.add_argument("--only", help="comma-separated endpoint names")
    parser.add_argument("--drive", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive:
        print(json.dumps(drive(json.loads(args.drive))))
        return 0
    if not 1 <= args.users <= 200 or not 0 < args.seconds <= 120:
        parser.error("--users must be 1..200 and --seconds 0..120: this is a bounded benchmark")
    endpoints = args.only.split(",") if args.only else ENDPOINTS
    if unknown := [e for e in endpoints if e not in ENDPOINTS]:
        parser.error(f"unknown endpoint {unknown[0]!r}; known: {', '.join(ENDPOINTS)}")

    import psutil

    from reference_backend.seed import run_seed

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-backend-") as tmp:
        db_path = Path(tmp) / "bench.sqlite3"
        t0 = time.perf_counter()
        seeded = run_seed(str(db_path), orgs=args.orgs, users_per_org=2, evidence=args.evidence, seed=1)
        seed_s = time.perf_counter() - t0
        print(
            f"seeded {args.evidence} evidence rows in {args.orgs} organisations in {seed_s:.1f} s", flush=True
        )
        with sqlite3.connect(db_path) as conn:
            emails = [r[0] for r in conn.execute("SELECT email FROM users ORDER BY email")]
        try:
            backend = launch_backend(
                data_dir=Path(tmp),
                database_url=str(db_path),
                settings={"CGPT_LLM_FIRST_TOKEN_MS": "0", "CGPT_LLM_TOKEN_MS": "0"},
                ready_timeout=60,
            )
        except BackendStartError as exc:
            print(f"bench_backend: {exc.report()}", file=sys.stderr)
            return exit_code_for(exc)
        url = backend.url
        server = psutil.Process(backend.pid)
        rows = []
        with backend:
            for endpoint in endpoints:
                spec = {
                    "endpoint": endpoint,
                    "url": url,
                    "emails": emails,
                    "password": seeded["password"],
                    "users": args.users,
                    "seconds": args.seconds,
                }
                server.cpu_percent()
                t = time.perf_counter()
                out = subprocess.run(
                    [sys.executable, __file__, "--drive", json.dumps(spec)],
                    capture_output=True,
                    text=True,
                    timeout=args.seconds + 120,
                    cwd=ROOT,
                )
                wall = time.perf_counter() - t
                if out.returncode != 0:
                    print(f"{endpoint}: load run failed:\n{out.stderr[-2000:]}", file=sys.stderr)
                    continue
                fig = json.loads(out.stdout.strip().splitlines()[-1])
                fig["server_cpu"] = server.cpu_percent() / 100 * wall / max(args.seconds, 1e-9)
                rows.append(fig)
                print(f"  {endpoint}: {fig['rps']:.0f} req/s", file=sys.stderr, flush=True)

    print(
        f"\n{args.users} concurrent clients, {args.seconds:g} s per endpoint, SQLite,"
        f" {args.evidence} evidence rows,"
        f" {os.cpu_count()} CPU cores shared by server and load generator"
    )
    header = f"{'endpoint':<20} {'requests':>9} {'fail':>5} {'req/s':>8} {'median ms':>10} {'p95 ms':>8}"
    header += f" {'server CPU':>11} {'loadgen CPU':>12}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['endpoint']:<20} {r['requests']:>9} {r['failures']:>5} {r['rps']:>8.0f} "
            f"{r['median_ms'] or 0:>10.0f} {r['p95_ms'] or 0:>8.0f} {r['server_cpu']:>10.0%}"
            f" {r['loadgen_cpu']:>11.0%}"
        )
        for err in r["errors"]:
            print(f"    error: {err}")
    print(
        f"\nmachine load average (1 min): {load_before:.1f} before, {os.getloadavg()[0]:.1f} after;"
        " other work on the machine lowers every figure"
    )
    print(
        "server CPU: share of one core over the run (includes warm-up); loadgen CPU near 100% means the"
        " load generator, not the backend, was the limit"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
