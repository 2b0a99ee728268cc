"""The Lua scripts (one ``.lua`` file each, headed by its KEYS/ARGV contract), each run
with the helpers of ``lib.lua`` in front of it."""

from __future__ import annotations

from functools import cache
from importlib import resources

__all__ = ["source"]

NAMES = (
    "enqueue", "fetch", "complete", "requeue", "cancel", "heartbeat", "recover", "retry_failed",
)  # fmt: skip


def _read(name: str) -> str:
    return resources.files(__package__).joinpath(f"{name}.lua").read_text(encoding="utf-8")


@cache
def source(name: str) -> str:
    """The script ``<name>.lua``, after the helpers of ``lib.lua``."""
    if name not in NAMES:
        raise KeyError(name)
    return _read("lib") + _read(name)
