"""The request path of `ApiUser.call`: `ApiSession.send` reports what Locust's own `request` reports,
once per request, and `read=False` checks an answer without parsing it."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.backend_process import Backend
from tests.scenarios.locust_run import REPO, clean_env

SCRIPT = """
import json, sys
import locust_scenarios
from locust import events, task
from locust.argument_parser import get_parser
from locust.env import Environment
from locust_scenarios import ApiUser

host = sys.argv[1]


class ProbeUser(ApiUser):
    host = sys.argv[1]

    @task
    def nothing(self):
        pass


opts = get_parser().parse_args(["--host", host, "--scenario-seed", "3"])
env = Environment(user_classes=[ProbeUser], host=host, parsed_options=opts, events=events)
events.init.fire(environment=env, runner=env.create_local_runner(), web_ui=None)
reports = []
env.events.request.add_listener(lambda **kw: reports.append(kw))
user = ProbeUser(env)
user.set_tags("probe")


def plain(report):
    out = {k: v for k, v in report.items() if k not in ("response", "response_time", "start_time")}
    out["exception"] = type(report["exception"]).__name__ if report["exception"] else None
    return out


pairs = []
for path in ("/health", "/no-such-route"):
    user.client.request("GET", path, name=path, context={})
    response, report = user.client.send("GET", path, path, context=user.context())
    user.client.request_event.fire(**report)
    pairs.append([plain(reports[-2]), plain(reports[-1])])
assert user.authenticate()
reports_before = len(reports)
unread = user.call("GET", "users.me", read=False)
lacking = user.call("GET", "users.me", fields=("nope",), read=False)
read = user.call("GET", "users.me")
print(json.dumps({
    "pairs": pairs,
    "unread": unread,
    "lacking": lacking,
    "last_failure": user.last_failure,
    "read_id": read["id"] if read else None,
    "calls_reported": [(r["name"], r["exception"] is None) for r in reports[reports_before:]],
}))
"""


def run(backend: Backend) -> dict[str, object]:
    command = [sys.executable, "-c", SCRIPT, backend.url]
    proc = subprocess.run(command, cwd=REPO, env=clean_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_send_reports_what_locusts_request_reports_and_call_reports_each_request_once(
    backend: Backend,
) -> None:
    result = run(backend)
    (locust_ok, ours_ok), (locust_404, ours_404) = result["pairs"]  # type: ignore[misc]
    assert ours_ok == locust_ok and ours_404 == locust_404
    assert locust_ok["url"] == f"{backend.url}/health" and locust_ok["response_length"] > 0
    assert locust_ok["exception"] is None and locust_404["exception"] == "LocustBadStatusCode"
    assert locust_ok["context"] == {"user_class": "ProbeUser", "tags": "probe"}
    assert result["unread"] is True and result["lacking"] is None
    assert result["last_failure"] == "response lacks nope"
    assert isinstance(result["read_id"], str)
    assert result["calls_reported"] == [
        ["/api/users/me", True],
        ["/api/users/me", False],
        ["/api/users/me", True],
    ]
