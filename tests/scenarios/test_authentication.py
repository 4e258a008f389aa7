"""ApiUser logs in or registers, refreshes an expired token once and retries, fails with a
message otherwise, and never lets a password or a token reach any output of the run."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

from tests.backend_process import Backend, run_backend
from tests.scenarios.locust_run import locust, run_users, stats_of

JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")


def register(backend: Backend) -> tuple[str, str]:
    email = f"shared-{uuid.uuid4().hex[:8]}@example.com"
    password = f"Pw-{uuid.uuid4().hex}"
    status, body = backend.request(
        "POST", "/api/auth/register", {"email": email, "password": password, "full_name": "Shared Account"}
    )
    assert status == 201, body
    return email, password


def outputs_of(tmp_path: Path, *streams: str) -> str:
    texts = list(streams)
    for path in tmp_path.rglob("*"):
        if path.is_file():
            texts.append(path.read_bytes().decode("utf-8", errors="replace"))
    return "\n".join(texts)


def test_expired_tokens_are_refreshed_once_and_the_request_retried(tmp_path: Path) -> None:
    with run_backend(tmp_path, settings={"CGPT_TOKEN_TTL_SECONDS": "2"}) as backend:
        result = run_users(backend.url, "peak_traffic:PeakTrafficScenario", users=2, seconds=5, wait=0.2)
    refused = {name: counts for (_m, name), counts in result.rows.items() if name.endswith(" [401]")}
    assert refused, f"no token expired during the run: {result.rows}"
    # One refresh per refused request, each refused attempt counted apart and not as a failure, and
    # every retry succeeded (no failure anywhere).
    assert result.requests("POST", "/api/auth/refresh") == sum(n for n, _ in refused.values())
    assert all(failures == 0 for _, failures in refused.values())
    assert result.errors == [], result.errors


def test_shared_account_logs_in_and_no_secret_reaches_any_output(
    scenario_backend: Backend, tmp_path: Path
) -> None:
    email, password = register(scenario_backend)
    out = tmp_path / "out"
    args = ["-f", "locust_scenarios", "--headless", "-u", "2", "-r", "2", "-t", "3s"]
    args += ["--host", scenario_backend.url]
    args += ["--login-email", email, "--login-password", password, "--loglevel", "DEBUG"]
    args += [
        "--csv",
        str(out / "locust"),
        "--html",
        str(out / "locust.html"),
        "--json-file",
        str(out / "locust"),
    ]
    args += ["--logfile", str(out / "locust.log"), "--run-dir", str(out / "run"), "ComplianceUser"]
    proc = locust(args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    stats = stats_of(proc)
    assert stats.requests("POST", "/api/auth/login") >= 2
    assert stats.requests("POST", "/api/auth/register") == 0
    everything = outputs_of(out, proc.stdout, proc.stderr)
    assert password not in everything
    assert not JWT.search(everything), JWT.search(everything)


def test_wrong_password_fails_login_with_a_message_and_without_the_password(
    scenario_backend: Backend, tmp_path: Path
) -> None:
    email, _ = register(scenario_backend)
    wrong = f"Wrong-{uuid.uuid4().hex}"
    args = ["-f", "locust_scenarios", "--headless", "-u", "1", "-r", "1", "-t", "3s"]
    args += ["--host", scenario_backend.url]
    args += ["--login-email", email, "--login-password", wrong, "--csv", str(tmp_path / "locust")]
    proc = locust([*args, "PeakTrafficScenario"])
    assert proc.returncode == 1
    stats = stats_of(proc)
    assert stats.failed("POST", "/api/auth/login") > 0
    messages = stats.messages
    assert "expected 200, got 401" in messages, messages
    assert wrong not in outputs_of(tmp_path, proc.stdout, proc.stderr)
