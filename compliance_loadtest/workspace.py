"""`Workspace`: what one simulated person has at hand between steps.

Steps are plain functions taking the user; what one step leaves for the next (the evidence this
person's organisation holds, the conversation they are in, an open chat socket or database
connection) lives here, on `user.workspace`, in the open: a step reads and writes these fields and
nothing else of the user. Each user has its own; nothing here is shared between users.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol


class Closeable(Protocol):
    def close(self) -> None: ...


@dataclass
class Workspace:
    """One user's working set. `evidence_limit` bounds the evidence ids kept (the most recent)."""

    evidence_limit: int = 50
    conversation_limit: int = 5
    organization_id: str | None = None
    """The organisation (tenant) the user works in, once a step has learnt it."""
    profile_id: str | None = None
    """The business profile made during onboarding."""
    evidence_ids: list[str] = field(default_factory=list)
    """Recent evidence of the organisation, oldest first, without duplicates."""
    conversation_ids: list[str] = field(default_factory=list)
    """Recent assistant conversations, oldest first."""
    chat: Closeable | None = None
    """An open assistant WebSocket (`steps.ws_chat.ChatSocket`), closed when the user stops."""
    db: Closeable | None = None
    """An open database session (`steps.sql.SqlSession`), closed when the user stops."""
    _known: set[str] = field(default_factory=set, repr=False)

    def remember_evidence(self, ids: Iterable[object]) -> None:
        """Keep these evidence ids (newest last), dropping the oldest beyond `evidence_limit`."""
        for item in ids:
            evidence_id = str(item)
            if evidence_id not in self._known:
                self._known.add(evidence_id)
                self.evidence_ids.append(evidence_id)
        excess = len(self.evidence_ids) - self.evidence_limit
        if excess > 0:
            for old in self.evidence_ids[:excess]:
                self._known.discard(old)
            del self.evidence_ids[:excess]

    def forget_evidence(self) -> None:
        self.evidence_ids.clear()
        self._known.clear()

    def some_evidence(self, rng: random.Random) -> str | None:
        """A random one of the remembered evidence ids, or None when there is none."""
        return rng.choice(self.evidence_ids) if self.evidence_ids else None

    @property
    def conversation_id(self) -> str | None:
        """The conversation the user is in (the most recent one)."""
        return self.conversation_ids[-1] if self.conversation_ids else None

    def remember_conversation(self, conversation_id: object) -> None:
        if isinstance(conversation_id, str) and conversation_id not in self.conversation_ids:
            self.conversation_ids = [*self.conversation_ids, conversation_id][-self.conversation_limit :]

    def close(self) -> None:
        """Close the chat socket and the database session, if open."""
        for name in ("chat", "db"):
            resource = getattr(self, name)
            setattr(self, name, None)
            if resource is not None:
                with contextlib.suppress(Exception):  # closing a broken connection may fail; nothing is lost
                    resource.close()
