"""`AsyncQueueStore`: the producer-side Redis operations of one queue, for asyncio code.

The twin of `store.QueueStore` (which workers also use): both send the calls that
`commands` builds, so they differ only in awaiting.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from redis.commands.core import AsyncScript

from . import commands as cmd
from .connection import connect_async, redis_errors
from .keys import QueueKeys
from .scripts import source
from .stats import RawCluster

__all__ = ["AsyncQueueStore"]


class AsyncQueueStore:
    def __init__(self, url: str, queue: str, timeout: float = 5.0) -> None:
        self.url = url
        self.keys = QueueKeys(queue)
        self.client = connect_async(url, timeout)
        self._scripts: dict[str, AsyncScript] = {}

    async def _run(self, call: cmd.ScriptCall) -> Any:
        script = self._scripts.get(call.script)
        if script is None:
            script = self._scripts[call.script] = self.client.register_script(source(call.script))
        with redis_errors(call.script, self.url):
            return await script(keys=call.keys, args=call.args)

    async def enqueue(self, items: Sequence[tuple[str, bytes]], priority: bool = False) -> None:
        await self._run(cmd.enqueue_call(self.keys, items, priority))

    async def get_result(self, task_id: str) -> bytes | None:
        with redis_errors("GET result", self.url):
            return cast(bytes | None, await self.client.get(self.keys.result(task_id)))

    async def task_known(self, task_id: str) -> bool:
        with redis_errors("HEXISTS", self.url):
            return bool(await self.client.hexists(self.keys.tasks, task_id))

    async def read_cluster(self) -> RawCluster:
        with redis_errors("reading cluster stats", self.url):
            pipe = self.client.pipeline(transaction=False)
            for command in cmd.cluster_commands(self.keys):
                pipe.execute_command(*command)
            first = await pipe.execute()
            ids = cmd.worker_ids(first)
            for command in cmd.worker_commands(self.keys, ids):
                pipe.execute_command(*command)
            workers = await pipe.execute() if ids else []
        return cmd.parse_cluster(first, workers)

    async def close(self) -> None:
        await self.client.aclose()
