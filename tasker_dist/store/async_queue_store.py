"""`AsyncQueueStore`: the producer-side Redis operations of one queue, for asyncio code.

The twin of `store.QueueStore` (which workers also use): both send the calls that
`commands` builds, so they differ only in awaiting.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import redis.asyncio.cluster
from redis.commands.core import AsyncScript

from ..errors import ConfigError, NotReplicated, RedisUnavailable
from ..metrics import RawCluster
from . import calls as cmd
from .clients import MAX_CONNECTIONS, close_async, connect_async
from .connection import call_async, redis_errors
from .keys import QueueKeys
from .scripts import source

__all__ = ["AsyncQueueStore"]

T = TypeVar("T")


class AsyncQueueStore:
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
        self.timeout = timeout
        self.wait_replicas = wait_replicas
        if wait_replicas and url.startswith("redis+cluster://"):
            # redis-py's asyncio cluster client cannot send a script and a WAIT on one
            # connection, and WAIT counts only the writes of its own connection.
            raise ConfigError("wait_replicas is not supported by AsyncProducer on a Redis "
                              "Cluster (use Producer, or wait_replicas=0)")  # fmt: skip
        with redis_errors("connecting", url):
            self.client = connect_async(url, timeout, max_connections=max_connections)
        # Calls beyond this wait their turn instead of failing for want of a connection
        # (redis-py's asyncio clients refuse, on every topology, past their limit).
        self._slots = asyncio.Semaphore(max_connections)
        self._scripts: dict[str, AsyncScript] = {}
        # redis-py's asyncio cluster client maps the slots on its first command; first
        # commands sent at once race each other there (they fail on an unconnected
        # connection), so one maps them before any other goes.
        self._mapped = not isinstance(self.client, redis.asyncio.cluster.RedisCluster)
        self._mapping = asyncio.Lock()

    async def _call(self, doing: str, fn: Callable[[], Awaitable[T]], repeatable: bool = True) -> T:
        if not self._mapped:
            async with self._mapping:
                if not self._mapped:
                    await call_async("mapping the cluster's slots", self.url,
                                     self.client.initialize)  # fmt: skip
                    self._mapped = True
        async with self._slots:
            return await call_async(doing, self.url, fn, repeatable=repeatable)

    def _script(self, name: str) -> AsyncScript:
        script = self._scripts.get(name)
        if script is None:
            script = self._scripts[name] = self.client.register_script(source(name))
        return script

    async def _run(self, job: cmd.ScriptCall) -> Any:
        script = self._script(job.script)
        return await self._call(job.script, lambda: script(keys=job.keys, args=job.args),
                                job.repeatable)  # fmt: skip

    async def enqueue(self, items: Sequence[tuple[str, bytes]], priority: bool = False) -> None:
        """See `QueueStore.enqueue`."""
        job = cmd.enqueue_call(self.keys, items, priority)
        if not self.wait_replicas:
            await self._run(job)
            return
        script = self._script(job.script)
        client = self.client

        async def send() -> int:
            pipe = client.pipeline(transaction=False)
            await script(keys=job.keys, args=job.args, client=pipe)  # type: ignore[arg-type]
            pipe.wait(self.wait_replicas, int(self.timeout * 800))
            return int((await pipe.execute())[1])

        acked = await self._call(job.script, send, job.repeatable)
        if acked < self.wait_replicas:
            ids = [task_id for task_id, _ in items]
            why = cmd.not_replicated(self.keys.queue, ids, acked, self.wait_replicas, self.timeout)
            raise NotReplicated(why)

    async def presence(self, task_ids: Sequence[str]) -> list[cmd.Presence]:
        """See `QueueStore.presence`."""
        commands = cmd.presence_commands(self.keys, task_ids)
        return cmd.parse_presence(await self._pipeline("reading tasks", commands))

    async def served_spread(self) -> int | None:
        """See `QueueStore.served_spread`."""
        reply = await self._call("HGET", lambda: self.client.hget(self.keys.control, "spread"))
        return cmd.spread_of(reply)

    async def read_cluster(self) -> RawCluster:
        first = await self._pipeline("reading cluster stats", cmd.cluster_commands(self.keys))
        ids = cmd.worker_ids(first)
        workers = await self._pipeline("reading worker stats", cmd.worker_commands(self.keys, ids))
        try:
            memory = await self._call("INFO memory", self._info_memory)
        except RedisUnavailable:
            memory = {}  # a managed Redis that does not allow INFO
        return cmd.parse_cluster(first, workers, memory)

    async def _pipeline(self, doing: str, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Send ``commands`` in one round trip (a fresh pipeline for each try)."""

        async def send() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            for command in commands:
                pipe.execute_command(*command)
            return list(await pipe.execute())

        return await self._call(doing, send) if commands else []

    async def _info_memory(self) -> Any:
        """INFO memory of the server that holds this queue."""
        if isinstance(self.client, redis.asyncio.cluster.RedisCluster):
            node = self.client.get_node_from_key(self.keys.tag)
            return await self.client.info("memory", target_nodes=node)
        return await self.client.info("memory")

    async def close(self) -> None:
        await close_async(self.client)
