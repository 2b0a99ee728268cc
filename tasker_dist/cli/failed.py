"""``tasker failed list|show|retry|purge``: inspect and requeue the failed store.

The failed store keeps tasks that could not be run (undecodable or forged payloads),
that kept killing their worker (quarantined) or that ran out of retries, each with its
raw bytes and the reason. Nothing here unpickles a payload: `show` reads only the
envelope's plain fields, and `retry` re-queues only payloads whose signature verifies.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

from ..errors import SerializationError
from ..store import QueueStore
from ..wire import FailedRecord, Signer, decode_task

__all__ = ["add_parser", "describe", "run"]


def add_parser(sub: Any, target: Any) -> None:
    """Add ``tasker failed ...`` to the ``tasker`` parser."""
    failed = sub.add_parser("failed", help="inspect, requeue or purge the failed store")
    actions = failed.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="the newest failed tasks")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true")
    show = actions.add_parser("show", help="one failed task in full")
    show.add_argument("task_id")
    for name, text in (("retry", "queue failed tasks again"), ("purge", "delete them")):
        cmd = actions.add_parser(name, help=text)
        cmd.add_argument("task_ids", nargs="*", metavar="TASK_ID")
        cmd.add_argument("--all", action="store_true", help="every task in the failed store")
    for parser in actions.choices.values():
        target(parser)
        parser.add_argument(
            "--allow-unsigned",
            action="store_true",
            help="accept unsigned payloads (only on a trusted Redis)",
        )


def _when(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


def describe(record: FailedRecord, signer: Signer) -> dict[str, Any]:
    """What is known of a failed task, without running or unpickling anything in it."""
    info: dict[str, Any] = {
        "task_id": record.task_id,
        "kind": record.kind,
        "reason": record.reason,
        "deliveries": record.deliveries,
        "failed_at": _when(record.failed_at),
        "payload_bytes": len(record.payload),
    }
    try:
        env = decode_task(signer.open(record.payload))
    except SerializationError as exc:
        info["retryable"] = f"no: {exc}"
        return info
    info["retryable"] = "yes"
    info["envelope"] = {
        "callable_bytes": len(env.fn),
        "argument_bytes": len(env.args),
        "once": env.once,
        "reply_to": env.reply_to,
        "queued_at": _when(env.enqueued_at),
        "timeout": env.timeout,
    }
    return info


def _records(store: QueueStore, ids: list[str]) -> list[tuple[str, FailedRecord | None]]:
    out: list[tuple[str, FailedRecord | None]] = []
    for task_id, data in zip(ids, store.failed_records(ids), strict=True):
        try:
            out.append((task_id, None if data is None else FailedRecord.decode(data)))
        except SerializationError:
            out.append((task_id, None))
    return out


def run(args: argparse.Namespace, store: QueueStore) -> int:
    signer = Signer.from_settings(None, args.allow_unsigned, queue=store.keys.queue)
    if args.action == "list":
        rows = [describe(r, signer) for _, r in _records(store, store.failed_ids(args.limit)) if r]
        if args.json:
            print(json.dumps(rows, indent=2))
        else:
            print(f"{store.failed_count()} task(s) in the failed store; newest first:")
            for row in rows:
                print(f"{row['task_id']}  {row['failed_at']}  {row['kind']:<12} "
                      f"deliveries {row['deliveries']}  {row['reason'][:80]}")  # fmt: skip
        return 0
    if args.action == "show":
        [(_, record)] = _records(store, [args.task_id])
        if record is None:
            print(f"no task {args.task_id} in the failed store")
            return 1
        print(json.dumps(describe(record, signer), indent=2))
        return 0
    if not args.all and not args.task_ids:
        print(f"tasker failed {args.action}: name task ids, or pass --all")
        return 2
    ids = store.failed_ids(1_000_000) if args.all else list(args.task_ids)
    if args.action == "purge":
        print(f"purged {store.purge_failed(None if args.all else ids)} task(s)")
        return 0
    return _retry(store, signer, ids)


def _retry(store: QueueStore, signer: Signer, ids: list[str]) -> int:
    items: list[tuple[str, bytes]] = []
    refused = 0
    for task_id, record in _records(store, ids):
        if record is None:
            print(f"{task_id}: not in the failed store")
            refused += 1
            continue
        try:
            decode_task(signer.open(record.payload))
        except SerializationError as exc:
            print(f"{task_id}: cannot be retried: {exc}")
            refused += 1
            continue
        items.append((task_id, record.payload))
    print(f"queued {store.retry_failed(items)} task(s) again")
    return 1 if refused else 0
