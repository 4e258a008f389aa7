"""ChatWebSocketUser measures connect, first frame and whole reply over a real WebSocket, with the LLM
measures of transport `ws`; error frames and dropped sockets are failures, after which it reconnects."""

from __future__ import annotations

from pathlib import Path

from tests.backend_process import Backend, run_backend
from tests.streaming.headless import assert_clean_exit, assert_survived, run_locust
from tests.streaming.users import ws_locustfile

WS_MEASURES = {"ws time to first token", "ws inter-token latency", "ws total"}


def test_connect_first_frame_and_reply_are_measured_with_the_stream_measures(
    backend: Backend, tmp_path: Path
) -> None:
    run = run_locust(ws_locustfile(tmp_path), tmp_path, host=backend.url, users=2, seconds=4, record=True)
    assert_clean_exit(run)
    assert run.names("WS") == {"ws connect", "ws first frame", "ws reply"}
    replies = run.requests("WS", "ws reply")
    assert replies > 0 and run.requests("WS", "ws first frame") == replies
    # Two users, each connected at start and again on every page reload.
    assert run.requests("WS", "ws connect") >= 2
    assert run.names("LLM") == WS_MEASURES
    assert all(run.requests("LLM", name) == replies for name in WS_MEASURES)
    assert run.average("LLM", "ws time to first token") <= run.average("LLM", "ws total")

    record = run.record()
    rows = record[(record["request_type"] == "WS") & (record["name"] == "ws reply")]
    assert len(rows) == (record["name"] == "ws total").sum() >= replies
    assert (rows["tokens"] > 0).all() and (rows["ttft_ms"] <= rows["response_time_ms"]).all()
    assert (rows["group"] == "websocket").all() and set(rows["tags"]) == {"ai,websocket"}
    # Tokens per second come from the whole reply's row; the LLM rows are times and are not streams.
    assert (rows["tokens"] / (rows["response_time_ms"] / 1000) > 0).all()
    llm = record[record["request_type"] == "LLM"]
    assert len(llm) > 0 and llm["ttft_ms"].isna().all() and llm["tokens"].isna().all()


def test_error_frames_and_dropped_sockets_are_failures_and_the_user_reconnects(tmp_path: Path) -> None:
    # Exactly every second question gets an error frame; the others are dropped after two tokens.
    faults = [{"path": "/ws/chat", "method": "WS", "error_rate": 0.5, "drop_after_tokens": 2}]
    with run_backend(tmp_path, extra_args=("--admin",)) as backend:
        status, _ = backend.request("PUT", "/admin/faults", {"faults": faults})
        assert status == 200
        run = run_locust(ws_locustfile(tmp_path), tmp_path, host=backend.url, users=2, seconds=4)
    assert_survived(run)
    assert run.returncode == 1
    replies = run.requests("WS", "ws reply")
    assert replies >= 4 and run.failures_of("WS", "ws reply") == replies
    assert run.names("LLM") == set()
    errors = [f["Error"] for f in run.failures if f["Name"] == "ws reply"]
    assert any("error frame, status 500" in e for e in errors), errors
    # A drop arrives as the server's close frame (1011) or, when the socket goes first, as a lost connection.
    drops = [
        f
        for f in run.failures
        if "mid-reply (close code 1011" in f["Error"] or "connection lost mid-reply" in f["Error"]
    ]
    assert drops, errors
    # A dropped socket is discarded: every question after a drop went over a new connection.
    assert run.requests("WS", "ws connect") >= sum(int(f["Occurrences"]) for f in drops)
    assert run.failures_of("WS", "ws connect") == 0
