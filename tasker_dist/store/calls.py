"""What each Redis operation sends and how its reply is read, without doing any I/O.

`QueueStore` (threads) and `AsyncQueueStore` (asyncio) both build their calls
here, so the two differ only in how they talk to Redis.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from ..metrics import RawCluster, histogram
from ..status import Status
from .keys import QueueKeys

__all__ = [
    "Fetched",
    "Finished",
    "Heartbeat",
    "Presence",
    "ScriptCall",
    "announce_commands",
    "cancel_call",
    "cluster_commands",
    "complete_call",
    "enqueue_call",
    "fetch_call",
    "finished_ttl_ms",
    "heartbeat_call",
    "not_replicated",
    "parse_cluster",
    "parse_deferred",
    "parse_fetch",
    "parse_heartbeat",
    "parse_presence",
    "presence_commands",
    "raw",
    "recover_call",
    "renew_call",
    "requeue_call",
    "retry_failed_call",
    "server_problem",
    "spread_of",
    "text",
    "watch_call",
    "worker_commands",
    "worker_ids",
]


@dataclass(frozen=True, slots=True)
class ScriptCall:
    script: str
    keys: list[str | bytes]
    args: list[Any]
    #: False when running the script twice is not the same as once: a call whose reply
    #: was lost (the connection dropped after Redis ran it) is then not sent again, and
    #: the caller learns that it may or may not have run.
    repeatable: bool = True


class Fetched(NamedTuple):  # not a frozen dataclass: one per task, and 3x faster to make
    """One task taken from the queue: its id, envelope (b"" if none is stored), retries
    so far, lane, and delivery number (the fencing token of this hold on it)."""

    task_id: str
    payload: bytes
    retries: int
    priority: bool
    delivery: int = 1


class Finished(NamedTuple):  # as Fetched
    """What a worker reports for one task: its status, the result to store (not for
    `Status.RETRIED`), and how long it waited and ran (None if it never ran)."""

    task_id: str
    status: Status
    result: bytes = b""
    reply_to: str = ""
    exec_s: float | None = None
    wait_s: float | None = None
    delivery: int = 1
    #: A record for the failed store (undecodable, forged or quarantined tasks), or b"".
    failed_record: bytes = b""


def enqueue_call(keys: QueueKeys, items: Sequence[tuple[str, bytes]], priority: bool) -> ScriptCall:
    args: list[Any] = []
    for task_id, payload in items:
        args.append(task_id)
        args.append(payload)
    lane = keys.priority if priority else keys.pending
    return ScriptCall(
        "enqueue", [keys.tasks, lane, keys.signal, keys.counters, keys.rates, keys.cancelled], args
    )


def fetch_call(keys: QueueKeys, worker_id: str, limit: int, ttl_ms: int) -> ScriptCall:
    return ScriptCall(
        "fetch",
        [keys.priority, keys.pending, keys.tasks, keys.retries, keys.deliveries,
         keys.held(worker_id), keys.signal, keys.workers, keys.cancelled],
        [limit, worker_id, ttl_ms],
        # Sent again, it would take more tasks, and those the first one took would sit
        # in the held hash with nobody knowing: the fetcher reconciles instead.
        repeatable=False,
    )  # fmt: skip


def parse_fetch(reply: Sequence[Any]) -> tuple[int, list[Fetched]]:
    now_ms = int(reply[0])
    tasks = [
        Fetched(text(reply[i]), reply[i + 1], int(reply[i + 2]), bool(int(reply[i + 3])),
                int(reply[i + 4]))
        for i in range(1, len(reply), 5)
    ]  # fmt: skip
    return now_ms, tasks


def finished_ttl_ms(result_ttl_ms: int) -> int:
    """How long a finished set (`QueueKeys.finished`) is kept after its last addition: a
    caller who asks within another `result_ttl` (at least a minute) after a result
    expired hears that it expired, not that the task never existed."""
    return result_ttl_ms + max(result_ttl_ms, 60_000)


def _publish(sharded: bool) -> str:
    """The publish command for a queue's channels: on a cluster SPUBLISH, which only the
    shard of the channel's slot (the queue's) hears; a PUBLISH goes to every node."""
    return "SPUBLISH" if sharded else "PUBLISH"


def complete_call(
    keys: QueueKeys,
    worker_id: str,
    ttl_ms: int,
    failed_cap: int,
    finished: Sequence[Finished],
    sharded: bool = False,
    deferred: bool = False,
) -> ScriptCall:
    """``deferred``: publish nothing; the reply says what to publish (`parse_deferred`)
    once replicas have the results."""
    args: list[Any] = [ttl_ms, failed_cap, keys.done_prefix, finished_ttl_ms(ttl_ms),
                       "" if deferred else _publish(sharded)]  # fmt: skip
    results: list[bytes] = []
    result_prefix = raw(keys.result(""))
    # On a cluster a script may only publish in its own slot: a reply channel elsewhere
    # (a producer of an earlier version) would fail the whole batch, so it is not told.
    own = keys.tag if sharded else ""
    for f in finished:
        task_id = raw(f.task_id)
        results.append(result_prefix + task_id)
        results.append(raw(keys.finished(f.task_id)))
        reply_to = f.reply_to if f.reply_to.startswith(own) else ""
        args.extend((
            task_id, f.delivery, f.status, f.result, reply_to,
            round(f.exec_s * 1e6) if f.exec_s is not None else -1,
            round((f.wait_s or 0.0) * 1e6),
            histogram.bucket_of(f.exec_s) if f.exec_s is not None else 0,
            f.failed_record,
        ))  # fmt: skip
    return ScriptCall(
        "complete",
        [keys.tasks, keys.retries, keys.deliveries, keys.held(worker_id), keys.counters,
         keys.histogram, keys.rates, keys.priority, keys.signal, keys.failed,
         keys.failed_index, keys.cancelled, keys.watched, *results],
        args,
    )  # fmt: skip


def requeue_call(keys: QueueKeys, worker_id: str, held: Sequence[tuple[str, int]]) -> ScriptCall:
    args: list[Any] = []
    for task_id, delivery in held:
        args.append(raw(task_id))
        args.append(delivery)
    return ScriptCall(
        "requeue", [keys.held(worker_id), keys.priority, keys.signal, keys.deliveries], args
    )


def recover_call(keys: QueueKeys, worker_ids: Sequence[str], only_stale: bool) -> ScriptCall:
    worker_keys: list[str] = []
    for wid in worker_ids:
        worker_keys.extend((keys.held(wid), keys.worker(wid), keys.tombstone(wid)))
    return ScriptCall(
        "recover", [keys.workers, keys.priority, keys.signal, keys.deliveries, *worker_keys],
        [1 if only_stale else 0, *worker_ids],
    )  # fmt: skip


def retry_failed_call(keys: QueueKeys, items: Sequence[tuple[str, bytes]]) -> ScriptCall:
    args: list[Any] = []
    for task_id, frame in items:
        args.append(raw(task_id))
        args.append(frame)
    return ScriptCall(
        "retry_failed",
        [keys.failed, keys.failed_index, keys.tasks, keys.retries, keys.deliveries,
         keys.pending, keys.signal, *(raw(keys.result(task_id)) for task_id, _ in items)],
        args,
    )  # fmt: skip


def cancel_call(
    keys: QueueKeys, ttl_ms: int, items: Sequence[tuple[str, bytes]], sharded: bool = False
) -> ScriptCall:
    args: list[Any] = [ttl_ms, finished_ttl_ms(ttl_ms), _publish(sharded)]
    per_task: list[bytes] = []
    for task_id, result in items:
        args.extend((raw(task_id), result, raw(keys.done_channel(task_id))))
        per_task.extend((raw(keys.result(task_id)), raw(keys.finished(task_id))))
    return ScriptCall(
        "cancel",
        [keys.tasks, keys.retries, keys.deliveries, keys.cancelled, keys.watched, *per_task],
        args,
    )


def parse_deferred(reply: Sequence[Any]) -> tuple[int, list[tuple[int, int]]]:
    """A deferred completion's reply: tasks skipped, and (index in the batch, 1 reply
    channel / 2 done channel / 3 both) of each result to publish."""
    return int(reply[0]), [(int(reply[k]) - 1, int(reply[k + 1])) for k in range(1, len(reply), 2)]


def announce_commands(
    keys: QueueKeys, finished: Sequence[Finished], announce: Sequence[tuple[int, int]],
    sharded: bool,
) -> list[tuple[Any, ...]]:  # fmt: skip
    """The publishes a deferred completion left to do."""
    publish = _publish(sharded)
    commands: list[tuple[Any, ...]] = []
    for index, on in announce:
        f = finished[index]
        if on & 1:
            commands.append((publish, f.reply_to, f.result))
        if on & 2:
            commands.append((publish, keys.done_channel(f.task_id), f.result))
    return commands


def not_replicated(
    queue: str, task_ids: Sequence[str], acked: int, wanted: int, timeout: float,
    results: bool = False,
) -> str:  # fmt: skip
    more = len(task_ids) - 5
    shown = ", ".join(task_ids[:5]) + (f" and {more} more" if more > 0 else "")
    what = "results of" if results else "queued"
    then = " (publishing them anyway)" if results else ""
    return (f"{what} task(s) {shown} on {queue!r}: on the master, but only {acked} of "
            f"{wanted} replica(s) confirmed within {timeout * 0.8:g} s (wait_replicas); a "
            f"failover now could lose them{then}")  # fmt: skip


def watch_call(keys: QueueKeys, task_ids: Sequence[str], delta: int) -> ScriptCall:
    """Count this process in (``delta`` 1) or out (-1) of those waiting on the done
    channels of ``task_ids``."""
    return ScriptCall("watch", [keys.watched], [delta, *(raw(t) for t in task_ids)])


def renew_call(keys: QueueKeys, worker_ids: Sequence[str], ttl_ms: int) -> ScriptCall:
    return ScriptCall(
        "renew", [keys.workers, *(keys.worker(wid) for wid in worker_ids)], [ttl_ms, *worker_ids]
    )


def heartbeat_call(
    keys: QueueKeys, worker_id: str, ttl_ms: int, window_s: int, fields: Mapping[str, Any]
) -> ScriptCall:
    args: list[Any] = [worker_id, ttl_ms, window_s]
    for name, value in fields.items():
        args.append(name)
        args.append(value)
    return ScriptCall(
        "heartbeat",
        [
            keys.workers,
            keys.worker(worker_id),
            keys.control,
            keys.rates,
            keys.pending,
            keys.priority,
            keys.tombstone(worker_id),
        ],
        args,
    )


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """What a worker learns from its heartbeat."""

    now_ms: int
    stop_all_ms: int | None
    stop_me_ms: int | None
    pending: int
    priority: int
    #: True when this worker had been taken for dead (its tasks were handed to others).
    was_dead: bool
    stale_workers: list[str]


def parse_heartbeat(reply: Sequence[Any]) -> Heartbeat:
    def opt(v: Any) -> int | None:
        return None if v is None else int(v)

    return Heartbeat(
        int(reply[0]),
        opt(reply[1]),
        opt(reply[2]),
        int(reply[3]),
        int(reply[4]),
        bool(int(reply[5])),
        [text(w) for w in reply[6:]],
    )


def cluster_commands(keys: QueueKeys) -> list[tuple[Any, ...]]:
    """Commands that read the whole cluster's state in one pipeline (then `worker_commands`)."""
    return [
        ("TIME",),
        ("LLEN", keys.pending),
        ("LLEN", keys.priority),
        ("ZRANGE", keys.workers, 0, -1),
        ("HGETALL", keys.counters),
        ("HGETALL", keys.histogram),
        ("HGETALL", keys.rates),
    ]


class Presence(NamedTuple):
    """What Redis has of one task: ``queued`` (or running: its envelope is stored), its
    stored ``result``, and whether it ``finished`` (its id in a finished set, which
    outlives the result: neither means no such task)."""

    queued: bool
    result: bytes | None
    finished: bool


def presence_commands(keys: QueueKeys, task_ids: Sequence[str]) -> list[tuple[Any, ...]]:
    """For each task, whether its envelope is stored (queued or running), its result, and
    whether it is in its finished set: in that order, so a task that finishes meanwhile
    is seen as running or finished, and a result that expires meanwhile as expired, never
    as neither (then `parse_presence`)."""
    commands: list[tuple[Any, ...]] = []
    for task_id in task_ids:
        commands.append(("HEXISTS", keys.tasks, raw(task_id)))
        commands.append(("GET", keys.result(task_id)))
        commands.append(("SISMEMBER", raw(keys.finished(task_id)), raw(task_id)))
    return commands


def parse_presence(replies: Sequence[Any]) -> list[Presence]:
    return [
        Presence(bool(replies[i]), replies[i + 1], bool(replies[i + 2]))
        for i in range(0, len(replies), 3)
    ]


def worker_commands(keys: QueueKeys, worker_ids: Sequence[str]) -> list[tuple[Any, ...]]:
    return [("HGETALL", keys.worker(wid)) for wid in worker_ids]


def worker_ids(first_reply: Sequence[Any]) -> list[str]:
    return [text(w) for w in first_reply[3]]


def parse_cluster(
    first: Sequence[Any], workers: Sequence[Any], memory: Mapping[str, Any]
) -> RawCluster:
    """The cluster from the replies of `cluster_commands`, `worker_commands` and INFO
    memory (empty where INFO is not allowed)."""
    seconds, micros = first[0]
    ids = worker_ids(first)
    return RawCluster(
        now_ms=int(seconds) * 1000 + int(micros) // 1000,
        queued=int(first[1]),
        priority=int(first[2]),
        workers=[(wid, _text_map(h)) for wid, h in zip(ids, workers, strict=True)],
        counters={k: int(v) for k, v in _text_map(first[4]).items()},
        buckets={int(k): int(v) for k, v in _text_map(first[5]).items()},
        rates={k: int(v) for k, v in _text_map(first[6]).items()},
        memory_used=int(memory.get("used_memory", 0)),
        memory_limit=int(memory.get("maxmemory", 0)),
        eviction_policy=str(memory.get("maxmemory_policy", "")),
    )


def spread_of(v: Any) -> int | None:
    """The ``spread`` field of a queue's control hash: what its daemons serve it as."""
    served = text(v) if v is not None else ""
    return int(served) if served.isascii() and served.isdigit() else None


def text(v: Any) -> str:
    """A reply as str; bytes that are not UTF-8 (a task id pushed by someone else) come
    back as the same bytes through `raw`."""
    return v.decode("utf-8", "surrogateescape") if isinstance(v, bytes) else str(v)


def raw(s: str) -> bytes:
    """``s`` as the bytes it was read from (see `text`); ids and id-bearing key names go
    to Redis through this, since redis-py (with hiredis) encodes str strictly."""
    return s.encode("utf-8", "surrogateescape")


def _text_map(h: Mapping[Any, Any]) -> dict[str, str]:
    return {text(k): text(v) for k, v in h.items()}


#: The oldest Redis the scripts run on (script flags, for `allow-oom`, came in 7.0).
MIN_REDIS = (7, 0)


def server_problem(info: Mapping[str, Any], url: str, cluster_url: bool) -> str | None:
    """What makes the server that answered INFO (server, replication, cluster sections)
    unfit to hold queues, as an error message; None if nothing does."""
    version = str(info.get("redis_version", ""))
    parts = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
    if len(parts) == 2 and parts < MIN_REDIS:
        return (f"{url} runs Redis {version}; tasker-dist needs Redis "
                f"{'.'.join(map(str, MIN_REDIS))} or later (or Valkey)")  # fmt: skip
    if str(info.get("cluster_enabled", "0")) == "1" and not cluster_url:
        return (f"{url} is a node of a Redis Cluster: use redis+cluster://host:port[,...] "
                "(else commands go to nodes that do not hold the queue)")  # fmt: skip
    if info.get("role") == "slave" and not cluster_url:
        master = f"{info.get('master_host')}:{info.get('master_port')}"
        return (f"{url} is a read-only replica (of {master}): name the master, or use "
                "redis+sentinel://sentinel:port[,...]/service to follow failovers")  # fmt: skip
    return None
