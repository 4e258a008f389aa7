"""Locustfiles for the streaming tests: the library's classes with a short think time and even task
weights (or only some of their tasks), nothing else.

A short think time and even weights make a run of a few seconds exercise every task even on a busy
machine; everything else (requests, checks, measures) is the classes' own code. The classes are
reached through their modules, not imported by name, so Locust collects only the subclasses below.
"""

from __future__ import annotations

from pathlib import Path

from tests.streaming.headless import write_locustfile

PICK = """
def pick(tasks, only):
    # One entry per task (even weights), or only the named ones.
    by_name = {t.__name__: t for t in tasks}
    return [t for name, t in by_name.items() if not only or name in only]
"""

AI_USER = """
from locust import constant
from locust_scenarios import ai_assistant


class FastAIAssistantUser(ai_assistant.AIAssistantUser):
    wait_time = constant(0.1)
    network_timeout = NETWORK_TIMEOUT


FastAIAssistantUser.tasks = pick(FastAIAssistantUser.tasks, ONLY)
"""

WS_USER = """
from locust import constant
from locust_scenarios import chat_websocket


class FastChatWebSocketUser(chat_websocket.ChatWebSocketUser):
    wait_time = constant(0.1)
    ws_timeout = NETWORK_TIMEOUT


FastChatWebSocketUser.tasks = pick(FastChatWebSocketUser.tasks, ONLY)
"""


def _source(template: str, network_timeout: float, only: tuple[str, ...]) -> str:
    return PICK + template.replace("NETWORK_TIMEOUT", repr(network_timeout)).replace("ONLY", repr(only))


def ai_locustfile(tmp_path: Path, network_timeout: float = 30.0, only: tuple[str, ...] = ()) -> Path:
    return write_locustfile(tmp_path, "fast_ai", _source(AI_USER, network_timeout, only))


def ws_locustfile(tmp_path: Path, network_timeout: float = 30.0) -> Path:
    return write_locustfile(tmp_path, "fast_ws", _source(WS_USER, network_timeout, ()))


def both_locustfile(tmp_path: Path, network_timeout: float = 30.0, only: tuple[str, ...] = ()) -> Path:
    both = AI_USER + WS_USER.replace("from locust import constant\n", "")
    return write_locustfile(tmp_path, "fast_ai_ws", _source(both, network_timeout, only))
