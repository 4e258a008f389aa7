"""Locustfiles for the streaming tests: the library's classes with a short think time, nothing else.

A short think time lets a run of a few seconds exercise every task; everything else (requests,
checks, measures) is the classes' own code. The classes are reached through their modules, not
imported by name, so Locust collects only the subclasses below.
"""

from __future__ import annotations

from pathlib import Path

from tests.streaming.headless import write_locustfile

AI_USER = """
from locust import constant
from locust_scenarios import ai_assistant


class FastAIAssistantUser(ai_assistant.AIAssistantUser):
    wait_time = constant(0.1)
    network_timeout = NETWORK_TIMEOUT
"""

WS_USER = """
from locust import constant
from locust_scenarios import chat_websocket


class FastChatWebSocketUser(chat_websocket.ChatWebSocketUser):
    wait_time = constant(0.1)
    ws_timeout = NETWORK_TIMEOUT
"""


def ai_locustfile(tmp_path: Path, network_timeout: float = 30.0) -> Path:
    return write_locustfile(tmp_path, "fast_ai", AI_USER.replace("NETWORK_TIMEOUT", repr(network_timeout)))


def ws_locustfile(tmp_path: Path, network_timeout: float = 30.0) -> Path:
    return write_locustfile(tmp_path, "fast_ws", WS_USER.replace("NETWORK_TIMEOUT", repr(network_timeout)))


def both_locustfile(tmp_path: Path, network_timeout: float = 30.0) -> Path:
    both = AI_USER + WS_USER.replace("from locust import constant\n", "")
    return write_locustfile(tmp_path, "fast_ai_ws", both.replace("NETWORK_TIMEOUT", repr(network_timeout)))
