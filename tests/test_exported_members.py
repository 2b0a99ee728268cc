"""What each package and module exports: the public API exactly, and every module's
``__all__`` naming what it defines for others (the rest is marked private with ``_``)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import tasker_dist

PUBLIC_API = {
    "AsyncProducer", "Config", "ConfigError", "EmbeddedServerError", "MaxRetriesExceeded",
    "Metrics", "NotReplicated", "PayloadRejected", "PayloadTooLarge", "Producer", "QueueFull",
    "RedisFailover", "RedisUnavailable", "RemoteTraceback", "ResultExpired", "SerializationError",
    "ShuttingDown", "SpreadProducer", "Stats",
    "TaskCancelled", "TaskContext", "TaskError", "TaskFailed", "TaskFuture", "TaskLost",
    "TaskManager", "TaskNotFound", "TaskQuarantined", "TaskRejected", "TaskTimeout",
    "TaskerError", "WorkerInfo",
}  # fmt: skip

MODULES = sorted(
    ["tasker_dist"]
    + [
        m.name
        for m in pkgutil.walk_packages(tasker_dist.__path__, "tasker_dist.")
        if not m.name.endswith(".__main__")  # an entry point: importing it runs it
    ]
)


def test_the_public_api_is_exactly_what_the_readme_documents() -> None:
    assert set(tasker_dist.__all__) == PUBLIC_API
    assert len(tasker_dist.__all__) == len(PUBLIC_API)
    for name in PUBLIC_API:
        assert getattr(tasker_dist, name).__name__ == name


def test_every_public_error_derives_from_tasker_error() -> None:
    for name in PUBLIC_API:
        obj = getattr(tasker_dist, name)
        if isinstance(obj, type) and issubclass(obj, Exception) and name != "RemoteTraceback":
            assert issubclass(obj, tasker_dist.TaskerError), name


@pytest.mark.parametrize("name", MODULES)
def test_every_module_lists_what_it_defines_for_others(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert len(set(exported)) == len(exported), "names listed twice"
    assert exported == sorted(exported, key=_all_order), "__all__ is not sorted"
    for item in exported:
        assert hasattr(module, item), f"{name}.__all__ names {item}, which it lacks"
    defined = {
        attr
        for attr, obj in vars(module).items()
        if (inspect.isclass(obj) or inspect.isfunction(obj))
        and obj.__module__ == name
        and not attr.startswith("_")
    }
    assert defined <= set(exported), f"public but not in __all__: {defined - set(exported)}"


def _all_order(item: str) -> tuple[int, str]:
    """ruff's order for ``__all__``: CONSTANTS, then Classes, then functions."""
    if item.isupper():
        return 0, item
    return (1 if item[0].isupper() else 2), item
