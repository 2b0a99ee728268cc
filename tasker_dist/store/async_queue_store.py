"""`AsyncQueueStore`: the producer-side Redis operations of one queue, for asyncio code.

The twin of `store.QueueStore` (which workers also use): both send the calls that
`commands` builds, so they differ only in awaiting.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.commands.core import AsyncScript

from ..errors import RedisUnavailable
from ..metrics import RawCluster
from . import calls as cmd
from .connection import MAX_CONNECTIONS, call_async, connect_async
from .keys import QueueKeys
from .scripts import source

__all__ = ["AsyncQueueStore"]


class AsyncQueueStore:
    def __init__(
        self, url: str, queue: str, timeout: float = 5.0, max_connections: int = MAX_CONNECTIONS
    ) -> None:
        self.url = url
        self.keys = QueueKeys(queue)
        self.client = connect_async(url, timeout, max_connections=max_connections)
        self._scripts: dict[str, AsyncScript] = {}

    async def _run(self, job: cmd.ScriptCall) -> Any:
        script = self._scripts.get(job.script)
        if script is None:
            script = self._scripts[job.script] = self.client.register_script(source(job.script))
        return await call_async(job.script, self.url,
                                lambda: script(keys=job.keys, args=job.args),
                                repeatable=job.repeatable)  # fmt: skip

    async def enqueue(self, items: Sequence[tuple[str, bytes]], priority: bool = False) -> None:
        await self._run(cmd.enqueue_call(self.keys, items, priority))

    async def presence(self, task_ids: Sequence[str]) -> list[cmd.Presence]:
        """See `QueueStore.presence`."""
        commands = cmd.presence_commands(self.keys, task_ids)
        return cmd.parse_presence(await self._pipeline("reading tasks", commands))

    async def read_cluster(self) -> RawCluster:
        first = await self._pipeline("reading cluster stats", cmd.cluster_commands(self.keys))
        ids = cmd.worker_ids(first)
        workers = await self._pipeline("reading worker stats", cmd.worker_commands(self.keys, ids))
        try:
            memory = await call_async("INFO memory", self.url, lambda: self.client.info("memory"))
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

        return await call_async(doing, self.url, send) if commands else []

    async def close(self) -> None:
        await self.client.aclose()
