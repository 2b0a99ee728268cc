"""tasker: inspect and control a tasker-dist cluster.

tasker demo                      the whole system on this machine, with live stats
tasker stats   [--json]          workers and queues of the cluster
tasker metrics [--json]          cluster-wide counters, percentiles, rates
tasker stop    [--worker ID]     ask every daemon (or one) to stop gracefully
tasker failed  list|show|retry|purge   tasks that could not run, and why
tasker server                    run a private local server and print its URL
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Any

from ..config import resolve_redis_url
from ..errors import ConfigError, TaskerError
from ..signals import ENDING_SIGNALS, SignalInbox
from ..store import QueueStore
from . import failed
from .demo import SIGNALS

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tasker", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True)

    demo = sub.add_parser(
        "demo",
        help="run a local cluster with producers and live stats",
        description="Run a private server, tasker-worker daemons and producers on this\n"
        "machine, with live stats; then stop them all and remove the temporary files.",
        epilog=SIGNALS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument("--tasks", type=int, default=4000)
    demo.add_argument("--workers", type=int, default=2, help="tasker-worker daemons")
    demo.add_argument("--producers", type=int, default=2)
    demo.add_argument("--slots", type=int, default=4, help="base slots per daemon")

    for name, text in (("stats", "workers and queues"), ("metrics", "counters and timings")):
        cmd = sub.add_parser(name, help=f"show the cluster's {text}")
        _target(cmd)
        _spread(cmd)
        cmd.add_argument("--json", action="store_true", help="print JSON")

    stop = sub.add_parser("stop", help="ask daemons to stop gracefully")
    _target(stop)
    _spread(stop)
    stop.add_argument("--worker", help="one worker id (see `tasker stats`); default: all")

    sub.add_parser(
        "server",
        help="run a local Redis-compatible server until interrupted",
        description="Run a private Redis-compatible server on a free loopback port and "
        "print its URL. SIGINT (Ctrl-C), SIGTERM or SIGHUP stops it, removes its temporary "
        "directory and exits 0; if this command is killed (SIGKILL), the server dies with "
        "it and the next start of a private server removes the directory.",
    )
    failed.add_parser(sub, _target)
    return p


def _target(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--redis-url", help="default: $TASKER_REDIS_URL")
    cmd.add_argument("--queue", default="default")


def _spread(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--spread", type=int, default=1, metavar="N",
                     help="the queue is spread over N sub-queues (tasker-worker --spread N): "
                     "all of them, together")  # fmt: skip


def _url(args: argparse.Namespace) -> str:
    url = resolve_redis_url(args.redis_url)
    if url is None:
        raise ConfigError("pass --redis-url or set $TASKER_REDIS_URL")
    return url


def _show(value: Any, as_json: bool) -> None:
    data = dataclasses.asdict(value)
    if as_json:
        print(json.dumps(data, indent=2))
        return
    for key, item in data.items():
        if key == "workers":
            print(f"{'workers':<24}{len(item)} daemon(s)")
            for w in item:
                print(
                    f"  {w['worker_id']:<32} host {w['host']:<16} pid {w['pid']:<8} "
                    f"slots {w['active_workers']} running {w['running_tasks']}"
                )
        elif isinstance(item, float):
            print(f"{key:<24}{item:.6g}")
        else:
            print(f"{key:<24}{item}")
    if data.get("redis_full"):
        print("Redis is full (maxmemory reached under noeviction): producers get QueueFull "
              "until workers have drained enough; or give Redis more memory")  # fmt: skip


def _serve() -> int:
    from ..store import EmbeddedServer

    # the inbox first: a signal that comes while the server starts stops it once started
    with SignalInbox(ENDING_SIGNALS) as signals, EmbeddedServer.start() as server:
        print(server.url, flush=True)
        signals.wait_for(lambda: signals.count)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "demo":
            from .demo import DemoOptions, run_demo

            return run_demo(DemoOptions(args.tasks, args.workers, args.producers, args.slots))
        if args.command == "server":
            return _serve()
        if args.command == "failed":
            store = QueueStore(_url(args), args.queue)
            try:
                return failed.run(args, store)
            finally:
                store.close()
        from ..client import SpreadProducer

        with SpreadProducer(_url(args), args.queue, spread=args.spread) as producer:
            if args.command == "stats":
                _show(producer.stats(), args.json)
            elif args.command == "metrics":
                _show(producer.metrics(), args.json)
            elif args.command == "stop":
                producer.request_stop(args.worker)
                print("stop requested" + (f" for {args.worker}" if args.worker else ""))
        return 0
    except ValueError as exc:  # ConfigError included
        print(f"tasker: {exc}", file=sys.stderr)
        return 2
    except TaskerError as exc:
        print(f"tasker: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
