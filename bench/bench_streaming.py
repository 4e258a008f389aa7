"""Why the streaming and database users read and wait the way they do, measured side by side.

    python bench/bench_streaming.py [--streams 10] [--first-token-ms 100] [--token-ms 20]

1. Time to first token of an SSE reply from the reference backend, read two ways in the same run:
   line by line as `_streaming.SseReader` does, and with Locust's `iter_content(1024)`, which waits
   for 1 KiB of body before yielding anything. The simulated model's own first-token delay is the
   floor both should approach.
2. Five greenlets each running four `SELECT pg_sleep(0.05)` through psycopg 3 under gevent, once with
   the wait psycopg picks after gevent's patching (`wait_poll`, cooperative) and once with its C wait
   (`wait_c`, which blocks the whole process): the wall time shows whether the users overlapped.

Each measurement runs in a child process (importing Locust patches the process with gevent). Not a
test: nothing here asserts timings; it prints medians and ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SSE_CHILD = r"""
import json, sys, time
import locust  # gevent patching, as in a real run
from locust.contrib.fasthttp import FastHttpSession
from locust.env import Environment
from compliance_loadtest.streaming import SseReader, TokenStream

url, streams = sys.argv[1], int(sys.argv[2])
session = FastHttpSession(url, Environment().events.request, user=None)
email = f"bench-{time.time_ns()}@example.com"
credentials = {"email": email, "password": "bench-password-1"}
session.post("/api/auth/register", json={**credentials, "full_name": "Bench"})
token = session.post("/api/auth/login", json=credentials).json()["access_token"]
headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
body = {"message": "Which evidence do we still need for SOC 2 CC6.1?", "context": {}}

def by_lines():
    stream = TokenStream("sse")
    resp = session.post("/api/chat/stream", json=body, headers=headers, stream=True)
    for event in SseReader(resp):
        if event.event == "token":
            stream.token(event.json())
    return stream.ttft_ms, stream.total_ms

def by_1k_chunks():
    start = time.perf_counter()
    resp = session.post("/api/chat/stream", json=body, headers=headers, stream=True)
    first = None
    for chunk in resp.iter_content(1024):
        if first is None and "event: token" in chunk:
            first = (time.perf_counter() - start) * 1000
    return first, (time.perf_counter() - start) * 1000

results = {"lines": [], "iter_content(1024)": []}
for _ in range(streams):  # interleaved, so both see the same backend state
    results["lines"].append(by_lines())
    results["iter_content(1024)"].append(by_1k_chunks())
json.dump(results, sys.stdout)
"""

PG_CHILD = r"""
import json, sys, time
import locust  # gevent patching first, as in a real run
import gevent
import psycopg, psycopg.waiting

url = sys.argv[1]
conns = [psycopg.connect(url, autocommit=True) for _ in range(5)]

def user(conn):
    for _ in range(4):
        conn.execute("SELECT pg_sleep(0.05)")

start = time.perf_counter()
gevent.joinall([gevent.spawn(user, c) for c in conns], raise_error=True)
json.dump({"wait": psycopg.waiting.wait.__name__, "seconds": time.perf_counter() - start}, sys.stdout)
"""


def child(code: str, *args: str, env: dict[str, str] | None = None) -> dict:  # type: ignore[type-arg]
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )
    if proc.returncode != 0:
        raise SystemExit(f"benchmark child failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def bench_sse(streams: int, first_token_ms: float, token_ms: float) -> None:
    from tests.backend_process import run_backend

    settings = {"CGPT_LLM_FIRST_TOKEN_MS": str(first_token_ms), "CGPT_LLM_TOKEN_MS": str(token_ms)}
    with tempfile.TemporaryDirectory() as tmp, run_backend(Path(tmp), settings=settings) as backend:
        results = child(SSE_CHILD, backend.url, str(streams))
    print(f"SSE time to first token, {streams} streams each, model first token {first_token_ms:g} ms, "
          f"then {token_ms:g} ms per token")  # fmt: skip
    medians = {}
    for how, rows in results.items():
        ttft = statistics.median(r[0] for r in rows)
        total = statistics.median(r[1] for r in rows)
        medians[how] = ttft
        print(f"  {how:<20} median ttft {ttft:8.1f} ms   median whole reply {total:8.1f} ms")
    print(f"  ratio iter_content(1024) / lines: {medians['iter_content(1024)'] / medians['lines']:.2f}x")


def bench_pg() -> None:
    from tests.backend_process import POSTGRES_URL

    cooperative = child(PG_CHILD, POSTGRES_URL)
    blocking = child(PG_CHILD, POSTGRES_URL, env={"PSYCOPG_WAIT_FUNC": "wait_c"})
    print("psycopg under gevent: 5 users x 4 x pg_sleep(0.05) (1.0 s if serial, 0.2 s if overlapped)")
    for r in (cooperative, blocking):
        print(f"  {r['wait']:<10} {r['seconds']:.2f} s")
    print(f"  ratio wait_c / {cooperative['wait']}: {blocking['seconds'] / cooperative['seconds']:.2f}x")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--streams", type=int, default=10)
    p.add_argument("--first-token-ms", type=float, default=100.0)
    p.add_argument("--token-ms", type=float, default=20.0)
    p.add_argument("--skip-postgres", action="store_true")
    args = p.parse_args()
    bench_sse(args.streams, args.first_token_ms, args.token_ms)
    if not args.skip_postgres:
        bench_pg()


if __name__ == "__main__":
    main()
