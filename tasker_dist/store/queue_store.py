"""`QueueStore`: every Redis operation of one queue, for threaded code.

The calls themselves are built in `calls`; this class only sends them. Every method
raises `RedisUnavailable` (never a redis-py error).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import redis
import redis.cluster
from redis.commands.core import Script

from ..errors import ConfigError, NotReplicated, RedisUnavailable
from ..metrics import RawCluster
from ..redis_url import safe_url
from . import calls as cmd
from .clients import (
    BLOCK_S,
    MAX_CONNECTIONS,
    AnyClient,
    close,
    connect,
    disconnect,
    node_client,
)
from .connection import call, redis_errors
from .keys import QueueKeys
from .scripts import source
from .subscription import Subscription

__all__ = ["CANCEL_CHUNK", "WAKE_TTL_MS", "QueueStore"]

log = logging.getLogger("tasker_dist.store")

#: Tasks cancelled per script call: under 3 ms of Redis time each on a 2-core host.
CANCEL_CHUNK = 250

#: A wake-up token nobody took (the worker was not waiting) is gone after this long.
WAKE_TTL_MS = 10_000


class QueueStore:
    def __init__(
        self,
        url: str,
        queue: str,
        timeout: float = 5.0,
        max_connections: int = MAX_CONNECTIONS,
        *,
        wait_replicas: int = 0,
    ) -> None:
        self.url = url
        self.keys = QueueKeys(queue)
        with redis_errors("connecting", url):  # a cluster client maps the slots at once
            self.client = connect(url, timeout, max_connections=max_connections)
        self._blocking: AnyClient | None = None
        #: Connect and command timeout (seconds).
        self.timeout = timeout
        self._scripts: dict[str, Script] = {}
        #: On a Redis Cluster: channels are sharded (SPUBLISH, SSUBSCRIBE).
        self.sharded = isinstance(self.client, redis.cluster.RedisCluster)
        #: Replicas that must have a task queued (or a result stored) before the producer
        #: is told it was accepted (or the result is published): 0 trusts the master.
        self.wait_replicas = wait_replicas
        self._shares_client = False  # made by `for_queue`: `close` leaves the client open

    def _script(self, name: str) -> Script:
        script = self._scripts.get(name)
        if script is None:
            script = self._scripts[name] = self.client.register_script(source(name))
        return script

    def _run(self, job: cmd.ScriptCall) -> Any:
        script = self._script(job.script)
        return call(job.script, self.url, lambda: script(keys=job.keys, args=job.args),
                    repeatable=job.repeatable)  # fmt: skip

    def _run_replicated(self, job: cmd.ScriptCall) -> tuple[Any, int]:
        """Run ``job``, then WAIT for `wait_replicas` replicas to have it; returns its
        reply and how many did within the timeout. WAIT counts the writes of its own
        connection, so both go in one pipeline to the server holding the queue."""
        script = self._script(job.script)
        server = self._server()
        wait_ms = int(self.timeout * 800)  # under the command timeout, which also applies

        def send() -> tuple[Any, int]:
            pipe = server.pipeline(transaction=False)
            script(keys=job.keys, args=job.args, client=pipe)
            pipe.wait(self.wait_replicas, wait_ms)
            reply, acked = pipe.execute()
            return reply, int(acked)

        return call(job.script, self.url, send, repeatable=job.repeatable)

    def _server(self) -> redis.Redis:
        """The client of the server that holds this queue (on a cluster, the master of
        its slot), for commands about a server."""
        return node_client(self.client, self.keys.tag)

    def ping(self) -> None:
        call("PING", self.url, self.client.ping)

    def check_server(self) -> None:
        """Raise `ConfigError` if the server holding this queue cannot serve it (too old,
        a cluster node or a replica named as one server), `RedisUnavailable` if it cannot
        be reached. A server that refuses INFO (a managed Redis) is taken as fit."""
        self.ping()
        try:
            info = call("INFO", self.url, lambda: self._server().execute_command(  # type: ignore[no-untyped-call]
                "INFO", "server", "replication", "cluster"))  # fmt: skip
        except RedisUnavailable as exc:
            if isinstance(exc.__cause__, redis.ResponseError):
                return  # INFO not allowed: nothing to check with
            raise
        problem = cmd.server_problem(info, safe_url(self.url), self.sharded)
        if problem is not None:
            raise ConfigError(problem)
        replicas = int(info.get("connected_slaves", 0))
        if replicas < self.wait_replicas:
            log.warning("wait_replicas is %d but the master holding queue %r has %d replica(s) "
                        "connected: results are published only after a timeout, and producers "
                        "asking for as many get NotReplicated", self.wait_replicas,
                        self.keys.queue, replicas)  # fmt: skip

    def eviction_policy(self) -> str | None:
        """Redis's ``maxmemory-policy`` (from INFO where CONFIG is not allowed, as on
        managed Redis), or None if neither says."""
        try:
            reply = call("CONFIG GET", self.url,
                         lambda: self._server().config_get("maxmemory-policy"))  # fmt: skip
            policies = {cmd.text(k): cmd.text(v) for k, v in dict(reply).items()}
            return policies.get("maxmemory-policy")
        except RedisUnavailable:
            pass
        policy = self._memory().get("maxmemory_policy")
        return None if policy is None else str(policy)

    def _memory(self) -> Mapping[str, Any]:
        """INFO memory, or nothing where INFO is not allowed."""
        try:
            return dict(call("INFO memory", self.url, lambda: self._server().info("memory")))
        except RedisUnavailable:
            return {}

    # -- producers ----------------------------------------------------------------------
    def enqueue(self, items: Sequence[tuple[str, bytes]], priority: bool = False) -> None:
        """Queue tasks; with `wait_replicas`, raises `NotReplicated` if fewer replicas
        than that have them within the timeout (they are queued on the master)."""
        job = cmd.enqueue_call(self.keys, items, priority)
        if not self.wait_replicas:
            self._run(job)
            return
        _, acked = self._run_replicated(job)
        if acked < self.wait_replicas:
            ids = [task_id for task_id, _ in items]
            why = cmd.not_replicated(self.keys.queue, ids, acked, self.wait_replicas, self.timeout)
            raise NotReplicated(why)

    def get_results(self, task_ids: Sequence[str]) -> list[bytes | None]:
        return self._pipeline("GET results", [("GET", self.keys.result(t)) for t in task_ids])

    def presence(self, task_ids: Sequence[str]) -> list[cmd.Presence]:
        """For each task: whether it is queued or running, its stored result, and whether
        it finished (one round trip)."""
        commands = cmd.presence_commands(self.keys, task_ids)
        return cmd.parse_presence(self._pipeline("reading tasks", commands))

    def cancel(self, ttl_ms: int, items: Sequence[tuple[str, bytes]]) -> list[str]:
        """Cancel the unfinished tasks among ``items`` (id, result to store); returns their
        ids. One script call per `CANCEL_CHUNK` tasks, so none blocks Redis for long."""
        cancelled: list[str] = []
        for start in range(0, len(items), CANCEL_CHUNK):
            call = cmd.cancel_call(self.keys, ttl_ms, items[start : start + CANCEL_CHUNK],
                                   self.sharded)  # fmt: skip
            cancelled.extend(cmd.text(i) for i in self._run(call))
        return cancelled

    def read_cluster(self) -> RawCluster:
        first = self._pipeline("reading cluster stats", cmd.cluster_commands(self.keys))
        ids = cmd.worker_ids(first)
        workers = self._pipeline("reading worker stats", cmd.worker_commands(self.keys, ids))
        return cmd.parse_cluster(first, workers, self._memory())

    def _pipeline(self, doing: str, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Send ``commands`` in one round trip (a fresh pipeline for each try)."""

        def send() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            for command in commands:
                pipe.execute_command(*command)
            return list(pipe.execute())

        return call(doing, self.url, send) if commands else []

    def served_spread(self) -> int | None:
        """Over how many sub-queues the daemons serving this queue spread it (the last one
        started says: ``tasker-worker --spread``), None if none has said."""
        reply = call("HGET", self.url, lambda: self.client.hget(self.keys.control, "spread"))
        return cmd.spread_of(reply)

    def announce_spread(self, count: int) -> int | None:
        """Say that this queue is served spread over ``count``; returns what was said before."""
        before = self.served_spread()
        call("HSET", self.url, lambda: self.client.hset(self.keys.control, "spread", count))
        return before

    def request_stop(self, worker_id: str | None) -> None:
        """Ask every daemon started before now (or one daemon) to stop gracefully."""
        field = "stop" if worker_id is None else f"stop:{worker_id}"
        seconds, micros = call("TIME", self.url, self.client.time)
        now_ms = seconds * 1000 + micros // 1000
        call("stop request", self.url, lambda: self.client.hset(self.keys.control, field, now_ms))

    # -- the failed store ---------------------------------------------------------------
    def failed_ids(self, limit: int) -> list[str]:
        """Ids in the failed store, newest first."""
        ids = call("ZREVRANGE", self.url,
                   lambda: self.client.zrevrange(self.keys.failed_index, 0, limit - 1))  # fmt: skip
        return [cmd.text(i) for i in ids]

    def failed_records(self, task_ids: Sequence[str]) -> list[bytes | None]:
        if not task_ids:
            return []
        return self._pipeline(
            "reading the failed store", [("HGET", self.keys.failed, cmd.raw(t)) for t in task_ids]
        )

    def failed_count(self) -> int:
        return int(call("ZCARD", self.url, lambda: self.client.zcard(self.keys.failed_index)))

    def retry_failed(self, items: Sequence[tuple[str, bytes]]) -> int:
        """Queue failed-store tasks again from their (checked) frames; returns how many."""
        if not items:
            return 0
        return int(self._run(cmd.retry_failed_call(self.keys, items)))

    def purge_failed(self, task_ids: Sequence[str] | None) -> int:
        """Delete failed-store entries (None: all of them); returns how many."""
        if task_ids is None:
            count = self.failed_count()
            keys = [("DEL", self.keys.failed), ("DEL", self.keys.failed_index)]
            self._pipeline("purging the failed store", keys)
            return count
        ids = [cmd.raw(t) for t in task_ids]
        removed, _ = self._pipeline("purging the failed store",
                                    [("HDEL", self.keys.failed, *ids),
                                     ("ZREM", self.keys.failed_index, *ids)])  # fmt: skip
        return int(removed)

    # -- workers ------------------------------------------------------------------------
    def fetch(self, worker_id: str, limit: int, ttl_ms: int) -> tuple[int, list[cmd.Fetched]]:
        """Take up to ``limit`` tasks into ``worker_id``'s held hash (``ttl_ms``: its
        heartbeat TTL, to register it if it is not yet in the workers zset)."""
        return cmd.parse_fetch(self._run(cmd.fetch_call(self.keys, worker_id, limit, ttl_ms)))

    def wait_for_work(self, worker_id: str) -> bool:
        """Block (at most `BLOCK_S`) until a producer or fetcher signals queued work, or
        `wake_worker` wakes this worker; True if it took a token of queued work."""
        if self._blocking is None:
            with redis_errors("connecting", self.url):
                self._blocking = connect(self.url, self.timeout, blocking=True)
        # Not retried: `interrupt_wait` ends the wait by dropping its connection.
        with redis_errors("BRPOP", self.url):
            reply = self._blocking.brpop(
                [self.keys.signal, self.keys.wake(worker_id)], timeout=BLOCK_S
            )
        return reply is not None and cmd.text(reply[0]) == self.keys.signal

    def pass_signal(self) -> None:
        """Put back a token `wait_for_work` took but will not act on, for another worker
        (the list keeps at most two)."""
        key = self.keys.signal
        self._pipeline("passing a wake-up on", [("LPUSH", key, 1), ("LTRIM", key, 0, 1)])

    def wake_worker(self, worker_id: str) -> None:
        """Make ``worker_id``'s `wait_for_work` return now, or its next one if it is not
        waiting (the token expires after `WAKE_TTL_MS` if nobody takes it)."""
        key = self.keys.wake(worker_id)
        self._pipeline("waking a worker", [("LPUSH", key, 1), ("PEXPIRE", key, WAKE_TTL_MS)])

    def interrupt_wait(self) -> None:
        """Make a `wait_for_work` blocked in another thread fail now (by closing its
        connection): for when Redis is too far gone for `wake_worker`."""
        if self._blocking is not None:
            disconnect(self._blocking)

    def complete(
        self, worker_id: str, ttl_ms: int, failed_cap: int, finished: Sequence[cmd.Finished]
    ) -> int:
        """Store results (or queue retries); returns how many tasks were no longer held.
        With `wait_replicas`, results are published once that many replicas have them (or
        after the timeout, logged: callers are not left waiting on a lost replica)."""
        job = cmd.complete_call(self.keys, worker_id, ttl_ms, failed_cap, finished,
                                self.sharded, deferred=self.wait_replicas > 0)  # fmt: skip
        if not self.wait_replicas:
            return int(self._run(job))
        reply, acked = self._run_replicated(job)
        skipped, announce = cmd.parse_deferred(reply)
        if acked < self.wait_replicas:
            log.warning("%s", cmd.not_replicated(self.keys.queue,
                        [finished[i].task_id for i, _ in announce] or ["(none to publish)"],
                        acked, self.wait_replicas, self.timeout, results=True))  # fmt: skip
        commands = cmd.announce_commands(self.keys, finished, announce, self.sharded)
        if commands:
            server = self._server()

            def send() -> None:
                pipe = server.pipeline(transaction=False)
                for command in commands:
                    pipe.execute_command(*command)  # type: ignore[no-untyped-call]
                pipe.execute()

            call("publishing results", self.url, send)
        return skipped

    def requeue(self, worker_id: str, held: Sequence[tuple[str, int]]) -> int:
        """Hand back tasks ``worker_id`` holds, given as (task id, delivery) pairs."""
        if not held:
            return 0
        return int(self._run(cmd.requeue_call(self.keys, worker_id, held)))

    def held(self, worker_id: str) -> dict[str, int]:
        """What Redis says ``worker_id`` holds: task id -> delivery."""
        reply = call("HGETALL", self.url, lambda: self.client.hgetall(self.keys.held(worker_id)))
        return {cmd.text(k): int(v) for k, v in dict(reply).items()}

    def recover(self, worker_ids: Sequence[str], only_stale: bool = True) -> int:
        """Hand back the tasks of the given workers whose heartbeat went stale (or of
        these workers whatever their state, ``only_stale=False``); returns how many."""
        if not worker_ids:
            return 0
        return int(self._run(cmd.recover_call(self.keys, worker_ids, only_stale)))

    def heartbeat(
        self, worker_id: str, ttl_ms: int, window_s: int, fields: Mapping[str, Any]
    ) -> cmd.Heartbeat:
        call = cmd.heartbeat_call(self.keys, worker_id, ttl_ms, window_s, fields)
        return cmd.parse_heartbeat(self._run(call))

    def renew(self, worker_ids: Sequence[str], ttl_ms: int) -> None:
        """Push the leases of these workers ``ttl_ms`` past Redis's now (for their
        supervisor); a worker no longer in the cluster is left out."""
        if worker_ids:
            self._run(cmd.renew_call(self.keys, worker_ids, ttl_ms))

    def leave(self, worker_id: str) -> int:
        """Remove a stopping worker from the cluster at once, handing back any task it
        still holds; returns how many tasks went back."""
        return self.recover([worker_id], only_stale=False)

    def watch(self, task_ids: Sequence[str], delta: int) -> None:
        """Count this process in (``delta`` 1) or out (-1) of those waiting on the done
        channels of ``task_ids``: results are published there only while someone is."""
        if task_ids:
            self._run(cmd.watch_call(self.keys, task_ids, delta))

    def subscription(self) -> Subscription:
        """A pub/sub connection of its own (for a result listener)."""
        return Subscription(self.client, self.url, self.timeout, self.keys.tag)

    def for_queue(self, queue: str) -> QueueStore:
        """A store of ``queue`` on the same server, sharing this store's connections (but
        for the blocking one, each store has its own); its `close` leaves them open."""
        other = copy.copy(self)
        other.keys = QueueKeys(queue)
        other._blocking = None
        other._shares_client = True
        return other

    def close(self) -> None:
        if not self._shares_client:
            close(self.client)
        if self._blocking is not None:
            close(self._blocking)
