"""arq as a `System`: ``arq WorkerSettings`` processes and an `ArqRedis` pool, driven
from one event loop kept for the producer's life."""

from __future__ import annotations

from arq import ArqRedis, create_pool
from arq.connections import RedisSettings
from arq.constants import result_key_prefix
from redis.client import Pipeline

from .base import AsyncSystem, Handle, TaskKind, WorkerSpec, bin_path

__all__ = ["ArqSystem"]


class ArqSystem(AsyncSystem):
    def __init__(self, redis_url: str) -> None:
        super().__init__(redis_url)
        self._pool: ArqRedis = self._loop.run(create_pool(RedisSettings.from_dsn(redis_url)))

    def worker_commands(self, spec: WorkerSpec) -> list[list[str]]:
        return [[bin_path("arq"), "benchmarks.systems.arq_app.WorkerSettings"]] * spec.processes

    async def _enqueue(self, kind: TaskKind) -> str:
        job = await self._pool.enqueue_job(str(kind))
        assert job is not None  # None only for a duplicate job id, and ids are random
        return job.job_id

    def probe(self, pipe: Pipeline, handle: Handle) -> None:
        pipe.exists(result_key_prefix + handle)

    def round_trip(self, timeout_s: float) -> None:
        async def trip() -> None:
            job = await self._pool.enqueue_job("noop")
            assert job is not None
            await job.result(timeout=timeout_s)  # polls, every 0.5 s by default

        self._loop.run(trip())

    def close(self) -> None:
        self._loop.run(self._pool.aclose())
        super().close()
