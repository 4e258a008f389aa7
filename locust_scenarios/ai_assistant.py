"""AIAssistantUser: a compliance manager asking the AI assistant, mostly with streamed replies."""

from __future__ import annotations

from locust import between, tag, task

from locust_scenarios import ApiUser, assistant


class AIAssistantUser(ApiUser):
    """A compliance manager working with the AI assistant, as its chat page is used.

    On start it logs in and opens a conversation (`POST /api/chat/conversations`). Most questions are
    asked on the chat page, whose reply streams in as server-sent events (`POST /api/chat/stream`,
    weight 6); integrations ask for the whole reply at once (`POST /api/chat/send`, 2); people scroll
    back through a conversation's history (`GET /api/chat/conversations/[id]/messages`, 3) and now and
    then start a new conversation (1). A streamed reply is read token by token and judged as a whole
    (`assistant.ask_sse`): its entry `POST /api/chat/stream` times the whole reply and carries
    `ttft_ms` and `tokens`; time to first token, inter-token latency, total and tokens per second are
    `LLM` entries of their own (`sse time to first token`, ...), so thresholds can name them.
    """

    wait_time = between(2, 8)

    def on_start(self) -> None:
        super().on_start()
        self.set_tags("ai")
        assistant.new_conversation(self)

    @tag("ai", "write")
    @task(1)
    def new_conversation(self) -> None:
        assistant.new_conversation(self)

    @tag("ai", "read")
    @task(3)
    def message_history(self) -> None:
        assistant.history(self)

    @tag("ai", "write")
    @task(2)
    def send_message(self) -> None:
        assistant.send(self)

    @tag("ai", "stream")
    @task(6)
    def stream_message(self) -> None:
        assistant.ask_sse(self)
