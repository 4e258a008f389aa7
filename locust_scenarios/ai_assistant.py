"""AIAssistantUser: a compliance manager asking the AI assistant, mostly with streamed replies."""

from __future__ import annotations

import json
from typing import Any

from locust import between, tag, task

from compliance_loadtest.streaming import SseReader, StreamError, TokenStream, fire_llm_measures
from locust_scenarios import ApiUser

MAX_CONVERSATIONS = 5


class AIAssistantUser(ApiUser):
    """A compliance manager working with the AI assistant, as its chat page is used.

    On start it logs in and opens a conversation (`POST /api/chat/conversations`). Most questions are
    asked on the chat page, whose reply streams in as server-sent events (`POST /api/chat/stream`,
    weight 6); integrations ask for the whole reply at once (`POST /api/chat/send`, 2); people scroll
    back through a conversation's history (`GET /api/chat/conversations/[id]/messages`, 3) and now and
    then start a new conversation (1). A streamed reply is read token by token and judged as a whole:
    tokens in order, then one `done` event whose `response` is the tokens joined and whose usage
    counts them; anything else is a failure with a message. The stream's own entry
    (`POST /api/chat/stream`) times the whole reply and carries `ttft_ms` and `tokens` in its context;
    time to first token, inter-token latency, total and tokens per second are `LLM` entries of their
    own (`sse time to first token`, ...), so thresholds can name them.
    """

    wait_time = between(2, 8)

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.conversation_ids: list[str] = []

    def on_start(self) -> None:
        super().on_start()
        self._task_tags = "ai"
        self.new_conversation()

    @property
    def conversation_id(self) -> str | None:
        return self.conversation_ids[-1] if self.conversation_ids else None

    def _remember(self, conversation_id: Any) -> None:
        if isinstance(conversation_id, str) and conversation_id not in self.conversation_ids:
            self.conversation_ids = [*self.conversation_ids, conversation_id][-MAX_CONVERSATIONS:]

    # --- tasks --------------------------------------------------------------------------------

    @tag("ai", "write")
    @task(1)
    def new_conversation(self) -> None:
        title = f"{self.fake.bs().capitalize()} review"
        body = self.call(
            "POST", "chat.conversations", json={"title": title, "context": {}}, fields=("created_at",)
        )
        if body is not None:
            self._remember(body["conversation_id"])

    @tag("ai", "read")
    @task(3)
    def message_history(self) -> None:
        if self.conversation_id is None:
            return self.new_conversation()
        ids = {"id": self.rng.choice(self.conversation_ids)}
        self.call("GET", "chat.messages", ids=ids, fields=("messages", "total_count"))
        return None

    @tag("ai", "write")
    @task(2)
    def send_message(self) -> None:
        payload = self.api.chat_payload(self.fake, self.rng, self.conversation_id)
        body = self.call("POST", "chat.send", json=payload, fields=("citations", "usage.completion_tokens"))
        if body is not None:
            self._remember(body["conversation_id"])

    @tag("ai", "stream")
    @task(6)
    def stream_message(self) -> None:
        payload = self.api.chat_payload(self.fake, self.rng, self.conversation_id)
        if self.stream_reply(payload):
            self.stream_reply(payload, retry=False)

    # --- one streamed reply -------------------------------------------------------------------

    def stream_reply(self, payload: dict[str, Any], *, retry: bool = True) -> bool:
        """Ask over SSE and read the reply to its end. True when a 401 was answered by refreshing the
        token (with `retry`), so the question should be asked again."""
        stat = self.api.name("chat.stream")
        stream = TokenStream("sse")
        headers = {**self.auth_headers(), "Accept": "text/event-stream"}
        context: dict[str, Any] = {}
        refreshed = False
        with self.client.request(
            "POST",
            self.api.path("chat.stream"),
            name=stat,
            json=payload,
            headers=headers,
            stream=True,
            catch_response=True,
            context=context,
        ) as resp:
            status = resp.status_code
            problem = self._status_problem(resp, stat, status)
            if problem is None:
                reader: SseReader | None = None
                try:
                    reader = SseReader(resp)
                    self._read(reader, stream)
                except StreamError as exc:
                    problem = str(exc)
                except Exception as exc:  # the connection broke or timed out mid-reply
                    problem = (
                        f"POST {stat}: stream broken ({type(exc).__name__}: {exc}) before the 'done' event"
                    )
                # The entry covers the whole reply, not only the time to the headers.
                resp.request_meta["response_time"] = stream.total_ms
                resp.request_meta["response_length"] = reader.bytes_read if reader else 0
                resp.request_meta["context"].update(stream.record_context())
            if problem is None:
                resp.success()
            elif status == 401 and retry and self.refresh_access_token():
                refreshed = True
                resp.request_meta["name"] = f"{stat} [401]"
                resp.success()  # refused, refreshed, retried by the caller: as `call` records it
            else:
                resp.failure(problem)
        if problem is None:
            self._remember(stream.conversation_id)
            fire_llm_measures(self.environment, stream, self.context())
        return refreshed

    def _status_problem(self, resp: Any, stat: str, status: int) -> str | None:
        if status == 200:
            content_type = resp.headers.get("content-type", "") if resp.headers else ""
            if "text/event-stream" not in content_type:
                return f"POST {stat}: expected text/event-stream, got {content_type or 'no content type'}"
            return None
        if status == 401:
            return f"401 Unauthorized from POST {stat}, and the token could not be refreshed"
        if status == 429:
            resp.request_meta["name"] = f"{stat} [429]"
            retry_after = resp.headers.get("retry-after", "?") if resp.headers else "?"
            return f"rate limited (429), Retry-After={retry_after}"
        if status == 0:
            error = getattr(resp, "error", None)
            return f"POST {stat}: no response ({type(error).__name__}: {error})"
        return f"POST {stat}: expected 200, got {status}{_detail(resp)}"

    @staticmethod
    def _read(reader: SseReader, stream: TokenStream) -> None:
        for event in reader:
            if event.event == "token":
                stream.token(event.json())
            elif event.event == "done":
                done = event.json()
                stream.done(done, content_key="response")
                if not isinstance(done.get("citations"), list) or not done.get("conversation_id"):
                    raise StreamError("sse: 'done' event lacks citations or conversation_id")
                stream.conversation_id = done["conversation_id"]
            elif event.event == "error":
                raise StreamError(f"sse: error event: {event.data[:200]}")
            else:
                raise StreamError(f"sse: unexpected event {event.event!r}")
        if stream.finished is None:
            raise StreamError("sse: stream ended without a 'done' event")


def _detail(resp: Any) -> str:
    try:
        body = json.loads(resp.content) if resp.content else None
    except (ValueError, TypeError):
        return ""
    detail = body.get("detail") if isinstance(body, dict) else None
    return f" ({str(detail)[:200]})" if isinstance(detail, str) and detail else ""
