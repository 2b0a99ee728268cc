"""The Lua scripts (one ``.lua`` file each, headed by its KEYS/ARGV contract), each run
with the helpers of ``lib.lua`` in front of it.

A script that frees at least the memory it takes (fetch, complete, hand-backs, recovery,
cancel, heartbeat, lease renewal) or next to nothing (watch) starts with
``#!lua flags=allow-oom``: Redis then runs it at its ``maxmemory`` too, so workers keep
draining a full Redis, whereas a script that only adds (enqueue) is refused with an
out-of-memory error the producer turns into `QueueFull`."""

from __future__ import annotations

from functools import cache
from importlib import resources

__all__ = ["source"]

NAMES = (
    "enqueue", "fetch", "complete", "requeue", "cancel", "heartbeat", "recover", "renew",
    "retry_failed", "watch",
)  # fmt: skip


def _read(name: str) -> str:
    return resources.files(__package__).joinpath(f"{name}.lua").read_text(encoding="utf-8")


@cache
def source(name: str) -> str:
    """The script ``<name>.lua``, after the helpers of ``lib.lua`` (its flags line, if
    any, first: Redis reads flags only there)."""
    if name not in NAMES:
        raise KeyError(name)
    script = _read(name)
    if script.startswith("#!"):
        flags, _, body = script.partition("\n")
        return f"{flags}\n{_read('lib')}{body}"
    return _read("lib") + script
