"""The live verdict judges on a thread while the users go on: an evaluation on gevent's loop stalled
every greenlet of the process for its whole length, and each request in flight took that stall into
its response time (bench/bench_live_verdict.py measures the effect on the record's tail)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.scenarios.locust_run import REPO, clean_env

SCRIPT = """
import json, sys, time
import gevent
import locust_scenarios
from locust import HttpUser, events, task
from locust.argument_parser import get_parser
from locust.env import Environment
from compliance_loadtest.plugin.live import live_verdict_of
from compliance_loadtest.plugin.record import RequestRecorder


class ProbeUser(HttpUser):
    host = "http://127.0.0.1:9"

    @task
    def nothing(self):
        pass


opts = get_parser().parse_args(["--host", ProbeUser.host, "--thresholds", "analysis/thresholds.yaml"])
env = Environment(user_classes=[ProbeUser], host=ProbeUser.host, parsed_options=opts, events=events)
events.init.fire(environment=env, runner=env.create_local_runner(), web_ui=None)
verdict = live_verdict_of(env)

# A long run's rows: 40 entries, a fifth of them failures, over 200 seconds.
recorder = RequestRecorder("local")
rows = int(sys.argv[1])
start = time.time() - 200
for i in range(rows):
    error = ValueError("boom") if i % 5 == 0 else None
    recorder.on_request("GET", f"/api/e{i % 40}", 1.0 + i % 97, 10, error, {}, start + 200 * i / rows)
verdict.add(recorder.take_table())

ticks = []


def ticker():
    while True:
        ticks.append(time.perf_counter())
        gevent.sleep(0.001)


gevent.spawn(ticker)
gevent.sleep(0.01)
now = time.time()
out = {}
for label, off in (("on the loop", False), ("off the loop", True)):
    began = time.perf_counter()
    snapshot = verdict.evaluate(now, off_the_loop=off)
    ended = time.perf_counter()
    out[label] = {
        "ticks": sum(began < t < ended for t in ticks),
        "seconds": ended - began,
        "so_far": [[j.rule, j.entry, j.status, j.shown, j.samples] for j in snapshot.so_far],
        "window": [[j.rule, j.entry, j.status, j.shown, j.samples] for j in snapshot.window],
    }
print(json.dumps(out))
"""


def test_an_evaluation_off_the_loop_lets_greenlets_run_and_judges_the_same() -> None:
    command = [sys.executable, "-c", SCRIPT, "200000"]
    proc = subprocess.run(command, cwd=REPO, env=clean_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    on, off = out["on the loop"], out["off the loop"]
    # On the loop a greenlet that wants to wake every millisecond waits for the evaluation, which yields
    # only where the statistics wait for their sorting (pool threads are greenlets under Locust); off
    # the loop it keeps waking: the judging thread hands the interpreter over every few milliseconds.
    assert on["seconds"] > 0.01, on
    assert off["ticks"] >= 3 * (on["ticks"] + 1), (on["ticks"], off["ticks"], off["seconds"])
    assert off["so_far"] == on["so_far"] and off["window"] == on["window"]
    # The rows were judged: every entry's failures (a fifth) break the shipped failure-ratio rule.
    assert any(status == "fail" for _rule, _entry, status, _shown, samples in on["so_far"] if samples)
