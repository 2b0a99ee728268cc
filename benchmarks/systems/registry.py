"""Every system the suite knows, without importing any of them: each adapter imports its
own package, which only the interpreter that runs it has (the peers' venv, or the
repository's environment for tasker-dist and the floor)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from .base import System

__all__ = ["PEERS", "SYSTEMS", "SystemInfo", "load"]


@dataclass(frozen=True)
class SystemInfo:
    name: str
    module: str  # benchmarks.systems.<module> holds the adapter class
    cls: str
    peer: bool  # True: runs from the peers' venv
    distributions: tuple[str, ...]  # versions recorded with the results


SYSTEMS: dict[str, SystemInfo] = {
    info.name: info
    for info in (
        SystemInfo("floor", "floor", "FloorSystem", False, ("redis", "hiredis")),
        SystemInfo("tasker-dist", "tasker", "TaskerSystem", False, ("tasker-dist",)),
        SystemInfo("rq", "rq", "RqSystem", True, ("rq",)),
        SystemInfo("arq", "arq", "ArqSystem", True, ("arq",)),
        SystemInfo("celery", "celery", "CelerySystem", True, ("celery", "kombu", "billiard")),
        SystemInfo("dramatiq", "dramatiq", "DramatiqSystem", True, ("dramatiq",)),
        SystemInfo("huey", "huey", "HueySystem", True, ("huey",)),
        SystemInfo("huey-notify", "huey", "HueyNotifySystem", True, ("huey",)),
        SystemInfo("taskiq", "taskiq", "TaskiqSystem", True, ("taskiq", "taskiq-redis")),
    )
}
PEERS = [name for name, info in SYSTEMS.items() if info.peer]


def load(name: str, redis_url: str) -> System:
    info = SYSTEMS[name]
    module = importlib.import_module(f"benchmarks.systems.{info.module}")
    cls: type[System] = getattr(module, info.cls)
    return cls(redis_url)
