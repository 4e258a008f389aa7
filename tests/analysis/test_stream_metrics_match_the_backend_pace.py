"""A real streamed run (2 users, 4 s) against the reference backend with a known simulated model pace:
the analysis's inter-token latency and tokens per second match that pace, and only the whole replies'
rows feed them (the `LLM` rows derived from a reply are not streams of their own)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from analysis import compute_stats, load_run
from tests.backend_process import Backend, run_backend

FIRST_TOKEN_MS = 200.0
TOKEN_MS = 40.0

LOCUSTFILE = """
from locust import constant, task

from locust_scenarios import ApiUser, assistant


class Asker(ApiUser):
    wait_time = constant(0.1)

    @task
    def ask(self):
        assistant.ask_sse(self, "Which controls does our access review evidence cover?")
"""


@pytest.fixture(scope="module")
def paced_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    settings = {"CGPT_LLM_FIRST_TOKEN_MS": str(FIRST_TOKEN_MS), "CGPT_LLM_TOKEN_MS": str(TOKEN_MS)}
    with run_backend(tmp_path_factory.mktemp("paced"), settings=settings) as b:
        yield b


@pytest.fixture(scope="module")
def streamed_run(paced_backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("streamed")
    (root / "asker.py").write_text(LOCUSTFILE)
    cmd = [
        sys.executable, "-m", "locust", "-f", "asker.py", "--headless", "-u", "2", "-r", "2", "-t", "4s",
        "--host", paced_backend.url, "--run-dir", "run", "--only-summary", "--stop-timeout", "5",
    ]  # fmt: skip
    r = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=120)
    assert (root / "run" / "requests").is_dir(), r.stderr[-3000:]
    return root / "run"


def test_inter_token_latency_and_tokens_per_second_match_the_configured_pace(streamed_run: Path) -> None:
    stats = compute_stats(load_run(streamed_run))
    key = ("POST", "/api/chat/stream")
    itl, tps = stats.itl[key], stats.tokens_per_s[key]
    assert itl.count >= 3
    assert itl.quantile(0.5) == pytest.approx(TOKEN_MS, rel=0.05)
    # The pace each reply should have had: its tokens over the model's time to produce them.
    assert stats.record is not None
    replies = stats.record.iloc[stats.indices[key]]
    tokens = replies["tokens"].to_numpy(dtype=np.float64)
    expected = np.median(tokens / ((FIRST_TOKEN_MS + TOKEN_MS * (tokens - 1)) / 1000.0))
    assert tps.quantile(0.5) == pytest.approx(expected, rel=0.05)
    assert stats.ttft[key].quantile(0.5) == pytest.approx(FIRST_TOKEN_MS, rel=0.25)


def test_only_whole_replies_feed_the_stream_measures(streamed_run: Path) -> None:
    stats = compute_stats(load_run(streamed_run))
    for table in (stats.ttft, stats.itl, stats.tokens_per_s):
        assert set(table) == {("POST", "/api/chat/stream")}
    llm = stats.entries[stats.entries["request_type"] == "LLM"]
    assert set(llm["name"]) == {"sse time to first token", "sse inter-token latency", "sse total"}
    assert not any("tokens/s" in str(n) for n in stats.entries["name"])
    # The derived entries are times, and agree with the replies they come from.
    itl_entry = llm[llm["name"] == "sse inter-token latency"].iloc[0]
    assert float(itl_entry["median"]) == pytest.approx(TOKEN_MS, rel=0.05)
