"""AIAssistantUser runs every task against the reference backend, measures its SSE streams as their own
LLM entries and in the exact record, and turns 500s, slow replies and dropped streams into failures
while its users keep running."""

from __future__ import annotations

from pathlib import Path

from tests.backend_process import Backend, run_backend
from tests.streaming.headless import assert_clean_exit, assert_survived, run_locust
from tests.streaming.users import ai_locustfile

STREAM = "/api/chat/stream"
SSE_MEASURES = {"sse time to first token", "sse inter-token latency", "sse total"}


def test_every_task_runs_and_the_stream_measures_agree(backend: Backend, tmp_path: Path) -> None:
    run = run_locust(ai_locustfile(tmp_path), tmp_path, host=backend.url, users=2, seconds=4, record=True)
    assert_clean_exit(run)
    for method, name in [
        ("POST", "/api/chat/conversations"),
        ("GET", "/api/chat/conversations/[id]/messages"),
        ("POST", "/api/chat/send"),
        ("POST", STREAM),
    ]:
        assert run.requests(method, name) > 0, name
    assert run.names("LLM") == SSE_MEASURES
    streams = run.requests("POST", STREAM)
    assert all(run.requests("LLM", name) == streams for name in SSE_MEASURES)
    assert run.average("LLM", "sse time to first token") <= run.average("LLM", "sse total")

    # Locust's CSV may be written a request or two before the end; the record holds every request.
    record = run.record()
    rows = record[record["name"] == STREAM]
    assert len(rows) >= streams and len(rows) == (record["name"] == "sse total").sum()
    assert (rows["tokens"] > 0).all() and rows["ttft_ms"].notna().all()
    # The stream's entry times the whole reply, so it is never shorter than its first token.
    assert (rows["ttft_ms"] <= rows["response_time_ms"]).all()
    # Tokens per second come from the whole reply's row; the LLM rows are times and are not streams.
    assert (rows["tokens"] / (rows["response_time_ms"] / 1000) > 0).all()
    llm = record[record["request_type"] == "LLM"]
    assert (llm["group"] == "ai").all() and (llm["user_class"] == "FastAIAssistantUser").all()
    assert llm["ttft_ms"].isna().all() and llm["tokens"].isna().all()
    assert set(rows["tags"]) == {"ai,stream"}


def test_500s_slow_replies_and_dropped_streams_are_failures_and_users_keep_running(tmp_path: Path) -> None:
    faults = [
        {"path": "/api/chat/send", "method": "POST", "error_rate": 0.5},
        {"path": STREAM, "method": "POST", "drop_after_tokens": 3},
        {"path": "/api/chat/conversations/*/messages", "method": "GET", "stall_ms": 3000},
    ]
    with run_backend(tmp_path, extra_args=("--admin",)) as backend:
        status, _ = backend.request("PUT", "/admin/faults", {"faults": faults})
        assert status == 200
        run = run_locust(
            ai_locustfile(tmp_path, network_timeout=1.0), tmp_path, host=backend.url, users=4, seconds=5
        )
    assert_survived(run)
    assert run.returncode == 1

    sends, failed_sends = run.requests("POST", "/api/chat/send"), run.failures_of("POST", "/api/chat/send")
    assert 0 < failed_sends < sends  # every second one
    streams = run.requests("POST", STREAM)
    assert streams >= 3 and run.failures_of("POST", STREAM) == streams
    history = run.requests("GET", "/api/chat/conversations/[id]/messages")
    assert history > 0 and run.failures_of("GET", "/api/chat/conversations/[id]/messages") == history
    assert run.names("LLM") == set()  # no stream completed, so none is measured

    errors = run.errors()
    assert any(e.startswith("POST /api/chat/send:") and "expected 200, got 500" in e for e in errors), errors
    stream_errors = [e for e in errors if e.startswith(f"POST {STREAM}:")]
    assert stream_errors and all("'done' event" in e for e in stream_errors), stream_errors
    history_errors = [e for e in errors if "/messages" in e]
    assert history_errors and all("no response" in e for e in history_errors), history_errors
