"""One workload of one system, once: ``python -m benchmarks.driver SYSTEM WORKLOAD ...``.

Run by the orchestrator (`benchmarks.cli`) with the interpreter that has the system
installed; prints the figures as one JSON object on its last line of stdout. Its worker
processes are its children and die with it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

import redis

from .systems.registry import SYSTEMS, load
from .workloads import WORKLOADS, Context, Sizes

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.driver")
    p.add_argument("system", choices=sorted(SYSTEMS))
    p.add_argument("workload", choices=sorted(WORKLOADS))
    p.add_argument("--redis-url", required=True)
    p.add_argument("--sizes", default="{}", help="JSON object of Sizes fields")
    p.add_argument("--log", type=Path, required=True, help="file for the workers' output")
    args = p.parse_args(argv)
    sizes = dataclasses.replace(Sizes(), **json.loads(args.sizes))
    # The app modules read the server from here, in the workers and in this producer alike.
    os.environ["BENCH_REDIS_URL"] = args.redis_url
    client = redis.Redis.from_url(args.redis_url)
    system = load(args.system, args.redis_url)
    try:
        figures = WORKLOADS[args.workload](system, Context(client, sizes, args.log))
    finally:
        system.close()
        client.close()
    print(json.dumps(figures), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
