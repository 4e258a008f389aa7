"""ChatWebSocketUser: the assistant's chat over one long-lived WebSocket per user."""

from __future__ import annotations

from locust import between, tag, task

from locust_scenarios import ApiUser, ws_chat


class ChatWebSocketUser(ApiUser):
    """A user keeping the assistant's chat open in a browser tab: one WebSocket, many questions.

    It logs in over HTTP, then opens `/ws/chat` and asks questions over it (`ws_chat.ask`), the access
    token going with the first question of each connection. Asking is what people do on that page
    (weight 5); reloading the page, which closes the socket and opens a new one, is rarer (1). Stats:
    `ws connect`, `ws first frame` and `ws reply` (request type `WS`; the reply's context carries
    `ttft_ms` and `tokens`) and the `LLM` entries with transport `ws`. A dropped connection, an error
    frame or a broken reply is a failure with a message; the next task connects again. The socket is
    closed cleanly when the user stops.
    """

    wait_time = between(3, 10)

    ws_timeout: float = 30.0
    """Seconds to wait for the connection, and for each frame of a reply, before failing it."""

    def on_start(self) -> None:
        super().on_start()
        self.set_tags("ai", "websocket")
        ws_chat.connect(self)

    @tag("ai", "websocket")
    @task(5)
    def ask(self) -> None:
        ws_chat.ask(self)

    @tag("ai", "websocket")
    @task(1)
    def reload_page(self) -> None:
        ws_chat.connect(self)
