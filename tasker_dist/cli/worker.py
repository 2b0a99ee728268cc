"""``tasker-worker module:config``: run a worker daemon.

The process started is a supervisor (`supervisor`) running ``--processes`` worker
processes (`process`) and restarting any that a task kills. Its signals and exit codes
are in `_SIGNALS_AND_EXIT_CODES`, which ``--help`` prints.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import logging
import os
import sys
from typing import Any

from ..clock import SYSTEM_CLOCK
from ..config import Config, resolve_redis_url
from ..errors import ConfigError, RedisUnavailable
from ..signals import SignalInbox
from ..status import ExitCode
from ..store import QueueStore
from ..wire import Signer
from ..worker import STOP_SIGNALS, LeaseKeeper, serve, supervise

__all__ = ["load_config", "main"]

log = logging.getLogger(__name__)

_SIGNALS_AND_EXIT_CODES = """\
signals (to the tasker-worker process; it passes them on to its worker processes):
  SIGTERM or SIGINT   stop: fetch nothing new, hand back tasks fetched but not
                      started, finish running tasks, destroy resources, exit 0;
                      no worker process is started or restarted any more
  a second one        kill: cancel running tasks, hand those still running after
                      kill_grace back to the queue, exit 1 (0 if the stop had
                      already ended); in any order (INT then TERM, TERM then
                      TERM, ...), also during start-up and during the stop
  further ones        change nothing

`tasker stop --queue NAME` stops every daemon serving NAME, also one that serves other
queues as well.

exit codes: 0 stopped, 1 killed, 2 bad command line or Config, 3 Redis unreachable
at start. A signal in the first ~0.3 s, while Python still loads and nothing has
started, gets its default action: the process ends at once (status 128+signal, or 1
when a SIGINT is raised as KeyboardInterrupt in Python's own start-up).
"""


def load_config(target: str) -> Config[Any]:
    """Import ``module:attribute``; the attribute is a `Config`, or a function returning one."""
    module_name, sep, attribute = target.partition(":")
    if not sep or not module_name or not attribute:
        raise ConfigError(f"expected module:attribute (e.g. myapp.tasks:config), got {target!r}")
    sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import {module_name!r}: {exc}") from exc
    try:
        value = getattr(module, attribute)
    except AttributeError:
        raise ConfigError(f"module {module_name!r} has no attribute {attribute!r}") from None
    if callable(value) and not isinstance(value, Config):
        value = value()
    if not isinstance(value, Config):
        raise ConfigError(f"{target} is a {type(value).__qualname__}, not a tasker_dist.Config")
    return value


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tasker-worker",
        description="Run a tasker-dist worker daemon serving one queue, or several with "
        "the same slots and resources.",
        epilog=_SIGNALS_AND_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "config",
        help="module:attribute of a tasker_dist.Config (or a function "
        "returning one), e.g. myapp.tasks:config",
    )
    p.add_argument(
        "--redis-url", help="Redis server (default: Config.redis_url, then $TASKER_REDIS_URL)"
    )
    p.add_argument(
        "--queue",
        action="append",
        metavar="NAME[=WEIGHT]",
        help="a queue to serve (default: Config.queues, else Config.queue). Repeat it to "
        "serve several with the same slots and resources (worker_count slots in all): "
        "without weights in strict order, a task of an earlier queue always taken first "
        "(--queue critical --queue default); with a weight on any, in a random order "
        "weighted at each fetch, so that no queue starves (--queue a=3 --queue b=1: a "
        "first 3 times in 4; a queue without one weighs 1)",
    )
    p.add_argument(
        "--spread",
        type=int,
        metavar="N",
        help="serve each queue as the N sub-queues a SpreadProducer spreads it over, so "
        "that one queue uses every master of a Redis Cluster (Config.spread; default 1). "
        "Producers and daemons must use the same N",
    )
    p.add_argument("--workers", type=int, help="base worker slots (Config.worker_count)")
    p.add_argument("--max-workers", type=int, help="burst limit (Config.max_worker_count)")
    p.add_argument(
        "--processes",
        type=int,
        default=1,
        help="worker processes on this host, each with its own slots (default 1)",
    )
    p.add_argument(
        "--log-level",
        default=os.environ.get("TASKER_LOG_LEVEL", "INFO"),
        help="DEBUG, INFO, WARNING or ERROR (default INFO)",
    )
    return p


def _configure(args: argparse.Namespace) -> Config[Any]:
    config = load_config(args.config)
    changes: dict[str, Any] = {}
    if args.queue:
        queues = tuple(_queue_arg(a) for a in args.queue)
        changes["queue"] = queues[0] if isinstance(queues[0], str) else queues[0][0]
        changes["queues"] = () if queues == (changes["queue"],) else queues
    if args.spread is not None:
        changes["spread"] = args.spread
    if args.workers is not None:
        changes["worker_count"] = args.workers
        if config.max_worker_count is not None and config.max_worker_count < args.workers:
            changes["max_worker_count"] = args.workers
    if args.max_workers is not None:
        changes["max_worker_count"] = args.max_workers
    url = resolve_redis_url(args.redis_url or config.redis_url)
    if url is None:
        raise ConfigError(
            "no Redis to serve: pass --redis-url, set Config.redis_url or $TASKER_REDIS_URL"
        )
    changes["redis_url"] = url
    config = dataclasses.replace(config, **changes)
    Signer.from_settings(
        config.secret, config.allow_unsigned, config.previous_secrets, queue=config.queue
    ).check_can_seal()
    return config


def _queue_arg(arg: str) -> str | tuple[str, int]:
    """``NAME`` or ``NAME=WEIGHT`` (a queue name may hold ':', never '=')."""
    name, sep, weight = arg.partition("=")
    if not sep:
        return name
    if not (weight.isascii() and weight.isdigit()) or int(weight) < 1:
        raise ConfigError(f"--queue {arg}: the weight must be a whole number >= 1")
    return name, int(weight)


def _announce_spread(store: QueueStore, config: Config[Any]) -> None:
    """Say on each queue served how it is spread, so that a producer spreading it
    otherwise is told (it would queue where no daemon serves)."""
    for name in config.named_queues:
        named = store if name == store.keys.queue else store.for_queue(name)
        try:
            before = named.announce_spread(config.spread)
        finally:
            if named is not store:
                named.close()
        if before is not None and before != config.spread:
            log.warning("queue %r was served spread over %d sub-queue(s), now %d: the tasks "
                        "left on the others wait for a daemon with --spread %d",
                        name, before, config.spread, before)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    # First of all: a signal from now on is counted, whatever start-up is doing (the
    # Config module's import may take long), and ends it once it is done.
    with SignalInbox(STOP_SIGNALS) as signals:
        raw = sys.argv[1:] if argv is None else argv
        args = _parser().parse_args(raw)
        logging.basicConfig(
            level=args.log_level.upper(),
            format="%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s",
        )
        try:
            config = _configure(args)
            if args.processes < 1:
                raise ConfigError(f"--processes must be >= 1, got {args.processes}")
        except ValueError as exc:  # ConfigError included
            print(f"tasker-worker: {exc}", file=sys.stderr)
            return ExitCode.BAD_CONFIG
        assert config.redis_url is not None
        first, *others = config.served_queues
        try:
            store = QueueStore(config.redis_url, first, config.connect_timeout,
                               wait_replicas=config.wait_replicas)  # fmt: skip
            stores = [store, *(store.for_queue(name) for name in others)]
            for each in stores:  # on a cluster, each queue's own server
                each.check_server()
            _announce_spread(store, config)
        except ConfigError as exc:
            print(f"tasker-worker: {exc}", file=sys.stderr)
            return ExitCode.BAD_CONFIG
        except RedisUnavailable as exc:
            print(f"tasker-worker: cannot start: {exc}", file=sys.stderr)
            return ExitCode.NO_START
        try:
            keeper = LeaseKeeper(stores, config.heartbeat_interval, config.hung_after,
                                 SYSTEM_CLOCK)  # fmt: skip
            return supervise(
                lambda worker_id, status_fd, pulse: serve(config, worker_id, status_fd, pulse),
                args.processes, stores, signals, keeper,
            )  # fmt: skip
        finally:
            for each in reversed(stores):
                each.close()
