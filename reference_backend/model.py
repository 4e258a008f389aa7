"""A deterministic stand-in for a hosted LLM: same question and citations, same reply, token by token.

Latency is what a load test cares about, so the model's timing (time to first token, delay per token)
comes from settings, and the text is assembled from templates chosen by a hash of the question. It must
not call anything external.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any

_OPENINGS = (
    "Based on your organisation's compliance records,",
    "Looking at the evidence you have collected,",
    "From a compliance perspective,",
    "Here is a summary of where you stand:",
)
_BODIES = (
    "the control you asked about is partly covered: policies exist, but reviews are not yet recorded on a"
    " regular schedule, which auditors will expect to see for the whole observation period.",
    "access reviews, change approvals and incident records are the evidence auditors sample most often,"
    " so keep them dated, attributable to a named owner and mapped to each framework control.",
    "data protection obligations apply to every system that stores personal data; a record of processing"
    " activities and a tested breach notification procedure close the most common gaps.",
    "encryption at rest and in transit, logging of privileged actions and quarterly vulnerability scans"
    " together satisfy most technical safeguards across SOC 2, ISO 27001 and HIPAA.",
)
_CLOSINGS = (
    "Next step: assign an owner and a due date to each open item.",
    "I recommend scheduling a readiness review before the audit window opens.",
    "Consider automating evidence collection so it stays current between audits.",
)
_STOP = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "can",
        "do",
        "does",
        "for",
        "from",
        "has",
        "have",
        "how",
        "i",
        "in",
        "is",
        "it",
        "me",
        "my",
        "of",
        "on",
        "or",
        "our",
        "should",
        "so",
        "that",
        "the",
        "their",
        "there",
        "this",
        "to",
        "us",
        "was",
        "we",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "you",
        "your",
    ]
)
_WORD = re.compile(r"\w+")


def keywords(question: str, limit: int = 8) -> list[str]:
    """Words of the question worth searching evidence for (no stop words, no one-letter words)."""
    words = [w.lower() for w in _WORD.findall(question)]
    return list(dict.fromkeys(w for w in words if len(w) > 2 and w not in _STOP))[:limit]


class SimulatedModel:
    def __init__(self, first_token_ms: float, token_ms: float) -> None:
        self.first_token_s = first_token_ms / 1000
        self.token_s = token_ms / 1000

    def reply_tokens(self, question: str, citations: Sequence[dict[str, Any]]) -> list[str]:
        """The reply as tokens (words with their trailing space); joined they give the whole reply."""
        digest = hashlib.sha256(question.strip().lower().encode()).digest()
        parts = [
            _OPENINGS[digest[0] % len(_OPENINGS)],
            _BODIES[digest[1] % len(_BODIES)],
        ]
        if digest[2] % 2:
            parts.append(_BODIES[(digest[1] + 1 + digest[3] % 3) % len(_BODIES)])
        if citations:
            titles = "; ".join(f"[{i + 1}] {c['title']}" for i, c in enumerate(citations))
            parts.append(f"Relevant evidence: {titles}.")
        parts.append(_CLOSINGS[digest[4] % len(_CLOSINGS)])
        words = " ".join(parts).split()
        return [w + " " for w in words[:-1]] + [words[-1]]

    @staticmethod
    def usage(question: str, tokens: Sequence[str], citations: Sequence[dict[str, Any]]) -> dict[str, int]:
        prompt = len(question.split()) + 40 + 30 * len(citations)  # + system prompt + cited passages
        return {
            "prompt_tokens": prompt,
            "completion_tokens": len(tokens),
            "total_tokens": prompt + len(tokens),
        }

    def generation_seconds(self, n_tokens: int) -> float:
        return self.first_token_s + self.token_s * max(0, n_tokens - 1)
