"""A trivial nginx endpoint on a free loopback port, for the benchmarks that measure the load side.

`location /ok` answers 200 with a fixed body and nothing else happens on the server, so what a
benchmark measures is the load generator's own cost per request.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location /ok {{ {ok} }}
{extra}
    }}
}}
"""

TEXT_OK = "return 200 'ok';"
JSON_OK = """default_type application/json; return 200 '{"ok":true}';"""
_TOKENS = '{"access_token":"bench-access","refresh_token":"bench-refresh","token_type":"bearer"}'
LOGIN_OK = f"default_type application/json; return 200 '{_TOKENS}';"
"""A login answer, so a library user can log in (`--login-email`) as it always does."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_nginx(
    work: Path, ok: str = TEXT_OK, locations: Mapping[str, str] | None = None, cpu: int | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """nginx serving `/ok` (and `locations`: path -> directives) from the folder `work`; returns the
    process and its base URL. With `cpu`, nginx runs on that CPU only (`taskset`), so a benchmark can
    keep it off the load generator's core."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        raise SystemExit("the benchmark serves its endpoint with nginx: apt-get install nginx")
    port = free_port()
    conf = work / "nginx.conf"
    extra = "\n".join(f"        location {path} {{ {body} }}" for path, body in (locations or {}).items())
    conf.write_text(NGINX_CONF.format(dir=work, port=port, ok=ok, extra=extra))
    pinned = ["taskset", "-c", str(cpu)] if cpu is not None else []
    proc = subprocess.Popen([*pinned, nginx, "-p", str(work), "-c", str(conf)], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc, f"http://127.0.0.1:{port}"
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"nginx did not start; see {work / 'error.log'}") from None
            time.sleep(0.05)


def stop_nginx(proc: subprocess.Popen[bytes]) -> None:
    """Stop nginx gracefully, or kill it when it does not stop within 10 s."""
    proc.send_signal(signal.SIGQUIT)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# The users both request-path benchmarks compare: a bare FastHttpUser and the library's user, sending the
# same request to the endpoint above. Appended to each benchmark's own locustfile header.
USERS = """

from locust import constant, task
from locust.contrib.fasthttp import FastHttpUser

from locust_scenarios import Api, ApiUser


class BenchApi(Api):
    PATHS = {**Api.PATHS, "bench.ok": "/ok"}
    REQUIRED_FIELDS = {**Api.REQUIRED_FIELDS, "bench.ok": ("ok",)}


class BareUser(FastHttpUser):
    wait_time = constant(0)
    headers = {"Authorization": "Bearer bench-access"}

    @task
    def ok(self):
        self.client.get("/ok", headers=self.headers)


class LibraryUser(ApiUser):
    wait_time = constant(0)
    api_class = BenchApi

    @task
    def ok(self):
        self.call("GET", "bench.ok", read=False)
"""
