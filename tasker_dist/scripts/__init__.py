"""The Lua scripts (one ``.lua`` file each, headed by its KEYS/ARGV contract)."""

from __future__ import annotations

from functools import cache
from importlib import resources

__all__ = ["source"]

NAMES = (
    "enqueue", "fetch", "complete", "requeue", "cancel", "heartbeat", "recover", "retry_failed",
)  # fmt: skip


@cache
def source(name: str) -> str:
    """The text of ``<name>.lua``."""
    if name not in NAMES:
        raise KeyError(name)
    return resources.files(__package__).joinpath(f"{name}.lua").read_text(encoding="utf-8")
