"""The client side of `test_multihost.py`, run inside a host's network namespace (a test
process cannot enter one itself): it reports through files, on the clock every
namespace shares (CLOCK_MONOTONIC).

    python -m tests.multihost_client ping URL --count 20
        prints the round trips of ``count`` PINGs (ms) as a JSON list.
    python -m tests.multihost_client produce URL --queue Q --ledger L --tasks N \\
            --workers W --then FILE [--then FILE2 ...] --out FILE
        once W daemons serve Q, queues N/(k+1) `tasks.ledger_task` tasks from 16
        threads (a caller waiting on each), then as many once each of the k --then
        files exists; waits for every result, and for W daemons to be listed again;
        writes what each caller got, and when, and how many daemons were listed at the
        end, to --out as JSON."""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import redis

from tasker_dist import Producer, RedisUnavailable

from . import tasks

POLL_S = 0.02
CALLERS = 16  # threads queueing at once


def _poll(condition: Callable[[], object], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            sys.exit(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(POLL_S)


def ping(url: str, count: int) -> None:
    client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    client.ping()  # connected: only the round trips are timed
    rtts_ms = []
    for _ in range(count):
        start = time.perf_counter()
        client.ping()
        rtts_ms.append((time.perf_counter() - start) * 1000)
    client.close()
    print(json.dumps({"rtts_ms": rtts_ms, "median_ms": statistics.median(rtts_ms)}))


def _workers(producer: Producer) -> int:
    try:
        return len(producer.stats().workers)
    except RedisUnavailable:
        return 0


def produce(args: argparse.Namespace) -> None:
    futures: dict[int, Future[Any]] = {}
    queued_at: dict[int, float] = {}  # when each caller began (monotonic)
    done_at: dict[int, float] = {}  # when it heard
    with Producer(args.url, args.queue, connect_timeout=1) as producer:
        _poll(lambda: _workers(producer) == args.workers, 60, f"{args.workers} daemons")

        def submit(n: int) -> None:
            queued_at[n] = time.monotonic()
            future = producer.queue_task_async(tasks.ledger_task, args.ledger, n, args.seconds)
            future.add_done_callback(lambda _: done_at.setdefault(n, time.monotonic()))
            futures[n] = future

        def submit_all(numbers: range) -> None:
            """Queued by many callers at once, as a busy service would: one after the
            other, a round trip each would queue no faster than workers run them."""
            with ThreadPoolExecutor(CALLERS) as pool:
                list(pool.map(submit, numbers))

        parts = len(args.then) + 1
        bounds = [args.tasks * i // parts for i in range(parts + 1)]
        for i, signal_file in enumerate([None, *args.then]):
            if signal_file is not None:
                _poll(functools.partial(os.path.exists, signal_file), 60, signal_file)
            submit_all(range(bounds[i], bounds[i + 1]))
        deadline = time.monotonic() + args.wait_s
        while not all(f.done() for f in futures.values()) and time.monotonic() < deadline:
            time.sleep(POLL_S)
        finished = {n: f for n, f in futures.items() if f.done()}
        outcome: dict[str, Any] = {
            "results": {n: f.result() for n, f in finished.items() if not f.exception()},
            "failed": {n: repr(f.exception()) for n, f in finished.items() if f.exception()},
            "waiting": [n for n in futures if n not in finished],
            "queued_at": queued_at,
            "done_at": done_at,
        }
        # A host cut off is taken for dead; once back, it must serve again.
        deadline = time.monotonic() + args.wait_s
        while _workers(producer) != args.workers and time.monotonic() < deadline:
            time.sleep(POLL_S)
        outcome["workers_after"] = _workers(producer)
    with open(args.out + ".part", "w") as out:
        json.dump(outcome, out)
    os.replace(args.out + ".part", args.out)  # whole or absent


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.multihost_client")
    commands = parser.add_subparsers(dest="command", required=True)
    ping_parser = commands.add_parser("ping")
    ping_parser.add_argument("url")
    ping_parser.add_argument("--count", type=int, default=20)
    produce_parser = commands.add_parser("produce")
    produce_parser.add_argument("url")
    for option in ("--queue", "--ledger", "--out"):
        produce_parser.add_argument(option, required=True)
    produce_parser.add_argument("--then", action="append", default=[], metavar="FILE")
    produce_parser.add_argument("--tasks", type=int, required=True)
    produce_parser.add_argument("--workers", type=int, required=True)
    produce_parser.add_argument("--seconds", type=float, default=0.005, help="each task's work")
    produce_parser.add_argument("--wait-s", type=float, default=60.0,
                                help="for every result, once all are queued")  # fmt: skip
    args = parser.parse_args()
    if args.command == "ping":
        ping(args.url, args.count)
    else:
        produce(args)


if __name__ == "__main__":
    main()
