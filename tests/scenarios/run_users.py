"""Run scenario user classes in-process with Locust's `Environment` and a local runner; print stats as JSON.

Used by the tests as a subprocess (`python -m tests.scenarios.run_users ...`): Locust's gevent patching
stays out of the test process. `--wait` replaces the classes' think time so that a run of a few seconds
exercises every task; everything else is the classes' own code on the real request path.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys

import gevent
import locust
import locust.log
from locust import constant
from locust.argument_parser import get_parser
from locust.env import Environment


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("classes", nargs="+", help="module:Class, module relative to locust_scenarios")
    p.add_argument("--host", required=True)
    p.add_argument("--users", type=int, default=2)
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--wait", type=float, default=None, help="constant think time replacing the classes' own")
    p.add_argument("--locust-args", default="", help="extra Locust options, space separated")
    args = p.parse_args(argv)

    import locust_scenarios  # noqa: F401  (installs the library's options and listeners)

    options = get_parser().parse_args(args=["--host", args.host, *args.locust_args.split()])
    classes = []
    for spec in args.classes:
        module, name = spec.split(":")
        cls = getattr(importlib.import_module(f"locust_scenarios.{module}"), name)
        if args.wait is not None:
            cls = type(name, (cls,), {"wait_time": constant(args.wait), "__module__": cls.__module__})
        classes.append(cls)
    env = Environment(
        user_classes=classes,
        host=args.host,
        parsed_options=options,
        events=locust.events,
        tags=options.tags,
        exclude_tags=options.exclude_tags,
    )
    runner = env.create_local_runner()
    locust.events.init.fire(environment=env, runner=runner, web_ui=None)
    runner.start(args.users, spawn_rate=args.users)
    gevent.sleep(args.seconds)
    runner.quit()
    locust.events.quitting.fire(environment=env, reverse=True)
    entries = [
        {
            "method": e.method,
            "name": e.name,
            "requests": e.num_requests,
            "failures": e.num_failures,
        }
        for e in env.stats.entries.values()
    ]
    errors = [
        {"method": e.method, "name": e.name, "error": str(e.error), "count": e.occurrences}
        for e in env.stats.errors.values()
    ]
    exceptions = [str(x["msg"]) for x in runner.exceptions.values()]
    json.dump(
        {
            "entries": entries,
            "errors": errors,
            "exceptions": exceptions,
            "unhandled_greenlet_exception": bool(locust.log.unhandled_greenlet_exception),
        },
        sys.stdout,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
