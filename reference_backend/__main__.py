"""Command line: `python -m reference_backend serve ...` and `python -m reference_backend seed ...`.

Exit codes: 0 normal end, 2 bad usage or settings (the message names the flag or variable).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

from reference_backend.settings import RateLimit, Settings, SettingsError


def _serve_parser(sub: Any) -> None:
    p = sub.add_parser("serve", help="serve the API with uvicorn")
    p.add_argument("--host", default="127.0.0.1", help="bind address (loopback only unless --allow-remote)")
    p.add_argument("--port", type=int, default=8000, help="port; 0 binds any free port (see --ready-file)")
    p.add_argument("--allow-remote", action="store_true", help="permit a non-loopback --host")
    p.add_argument("--ready-file", type=Path, help='once serving, write {"url", "pid", "database_url"} here')
    p.add_argument("--database-url", help="postgresql://... or a SQLite path (env DATABASE_URL)")
    p.add_argument("--demo-data", action="store_true", default=None, help="seed a demo organisation at start")
    p.add_argument("--demo-evidence", type=int, help="evidence rows of the demo organisation (default 500)")
    p.add_argument(
        "--admin", action="store_true", default=None, help="serve loopback-only /admin/* endpoints"
    )
    p.add_argument("--token-ttl-seconds", type=float, help="access token lifetime (CGPT_TOKEN_TTL_SECONDS)")
    p.add_argument("--llm-first-token-ms", type=float, help="simulated model time to first token")
    p.add_argument("--llm-token-ms", type=float, help="simulated model delay per token")
    p.add_argument("--report-seconds", type=float, help="report job duration")
    p.add_argument("--rate-limit", help="e.g. 100/minute; keyed on the user (CGPT_RATE_LIMIT)")
    p.add_argument("--faults", help="fault rules as JSON (CGPT_FAULTS)")
    p.add_argument("--kdf-cost", type=int, help="scrypt cost, log2(N) (CGPT_KDF_COST)")
    p.add_argument(
        "--access-log", action="store_true", default=None, help="uvicorn access log (off by default)"
    )


def _seed_parser(sub: Any) -> None:
    p = sub.add_parser("seed", help="fill the database with a realistic data set (Faker, fixed seed)")
    p.add_argument("--database-url", help="postgresql://... or a SQLite path (env DATABASE_URL); required")
    p.add_argument("--orgs", type=int, default=5, help="organisations (default 5)")
    p.add_argument("--users-per-org", type=int, default=3, help="users per organisation (default 3)")
    p.add_argument("--evidence", type=int, default=10_000, help="evidence rows in total (default 10000)")
    p.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def settings_from(args: argparse.Namespace) -> Settings:
    base = Settings.from_env()
    faults = None
    if getattr(args, "faults", None):
        try:
            faults = json.loads(args.faults)
        except json.JSONDecodeError as exc:
            raise SettingsError(f"--faults: not valid JSON ({exc})") from exc
        faults = tuple(faults.get("faults", [faults]) if isinstance(faults, dict) else faults)
    return base.with_overrides(
        database_url=args.database_url,
        demo_data=args.demo_data,
        demo_evidence=args.demo_evidence,
        admin=args.admin,
        token_ttl_seconds=args.token_ttl_seconds,
        llm_first_token_ms=args.llm_first_token_ms,
        llm_token_ms=args.llm_token_ms,
        report_seconds=args.report_seconds,
        rate_limit=RateLimit.parse(args.rate_limit) if args.rate_limit else None,
        faults=faults,
        kdf_cost=args.kdf_cost,
        access_log=args.access_log,
    )


# glibc gives each thread that allocates concurrently its own malloc arena, up to 8 per core, and keeps
# what a thread frees in that thread's arena. With 24 worker threads (`CGPT_THREADS`) passing large
# transient buffers around (pages of 100 rows, bulk bodies, SQLite scratch), the free memory spread over
# many arenas grew RSS by ~150 MB in a 40 s mixed load while live allocations stayed near 30 MB. Two
# arenas keep that free memory reusable; the lock contention it adds is small next to the GIL's.
MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # glibc's mallopt parameter number for the arena limit (malloc.h)


def limit_malloc_arenas() -> bool:
    """Cap glibc's malloc arenas at MALLOC_ARENAS for threads started from now on, unless the
    environment already chooses (`MALLOC_ARENA_MAX`, or `glibc.malloc.arena_max` in `GLIBC_TUNABLES`).
    True when the cap was set; False elsewhere than glibc."""
    if "MALLOC_ARENA_MAX" in os.environ or "arena_max" in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    # glibc's mallopt answers 1 on success; musl's is a stub answering 0 (it has no arenas).
    return bool(mallopt(_M_ARENA_MAX, MALLOC_ARENAS) == 1)


def serve(args: argparse.Namespace) -> int:
    from reference_backend.app import create_app, is_loopback
    from reference_backend.db import MissingDriver

    # Before any worker thread exists: arenas are assigned to threads as they first allocate.
    limit_malloc_arenas()

    if not is_loopback(args.host) and not args.allow_remote:
        print(
            f"error: --host {args.host} is not a loopback address; this backend is for local load tests."
            " Pass --allow-remote to serve it anyway.",
            file=sys.stderr,
        )
        return 2
    settings = settings_from(args)
    from reference_backend.faults import FaultRuleError

    try:
        app = create_app(settings)
    except FaultRuleError as exc:
        print(f"error: CGPT_FAULTS / --faults: {exc}", file=sys.stderr)
        return 2
    except MissingDriver as exc:
        print(f"error: --database-url / DATABASE_URL: {exc}", file=sys.stderr)
        return 2

    import uvicorn

    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as exc:
        print(f"error: cannot bind {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 2
    port = sock.getsockname()[1]
    host = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{host}:{port}"
    db = app.fastapi_app.state.backend.db

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.should_exit:
                return
            if args.ready_file:
                tmp = args.ready_file.with_name(args.ready_file.name + ".tmp")
                tmp.write_text(json.dumps({"url": url, "pid": os.getpid(), "database_url": db.public_url}))
                tmp.replace(args.ready_file)
            print(f"Reference backend ready at {url}", flush=True)

    config = uvicorn.Config(
        app,
        loop="uvloop",
        http="httptools",
        ws="websockets-sansio",
        lifespan="on",
        access_log=settings.access_log,
        log_level="warning",
        timeout_keep_alive=30,
        backlog=2048,
        timeout_graceful_shutdown=2,
    )
    Server(config).run(sockets=[sock])
    return 0


def seed(args: argparse.Namespace) -> int:
    from reference_backend.db import MissingDriver
    from reference_backend.seed import SeedError, run_seed

    url = args.database_url or os.environ.get("DATABASE_URL")
    if not url:
        print(
            "error: seed needs --database-url (a SQLite path or postgresql://...) or DATABASE_URL",
            file=sys.stderr,
        )
        return 2
    for name in ("orgs", "users_per_org", "evidence"):
        if getattr(args, name) < (0 if name == "evidence" else 1):
            print(
                f"error: --{name.replace('_', '-')} must be positive, got {getattr(args, name)}",
                file=sys.stderr,
            )
            return 2
    try:
        result = run_seed(
            url,
            orgs=args.orgs,
            users_per_org=args.users_per_org,
            evidence=args.evidence,
            seed=args.seed,
            progress=not args.no_progress,
        )
    except SeedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except MissingDriver as exc:
        print(f"error: --database-url / DATABASE_URL: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m reference_backend", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _serve_parser(sub)
    _seed_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return serve(args) if args.command == "serve" else seed(args)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
