"""How large a task or a result may be."""

from __future__ import annotations

from ..errors import PayloadTooLarge

__all__ = ["DEFAULT_MAX_PAYLOAD_BYTES", "check_size"]

#: A task or result larger than this is refused (10 MiB): Redis holds every queued task
#: in memory, and one huge payload stalls every worker that reads it.
DEFAULT_MAX_PAYLOAD_BYTES = 10 * 1024 * 1024


def check_size(what: str, size: int, limit: int) -> None:
    """Raise `PayloadTooLarge` if ``size`` bytes is over ``limit``."""
    if size > limit:
        raise PayloadTooLarge(f"{what} payload is {size:,} bytes, over the limit of "
                              f"{limit:,} (max_payload_bytes)")  # fmt: skip
