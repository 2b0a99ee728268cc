"""`Backoff`: how long to wait before trying again."""

from __future__ import annotations

import random

__all__ = ["Backoff"]


class Backoff:
    """Capped exponential backoff: ``first_s``, twice that, ... up to ``cap_s``, each
    delay spread by +/- ``jitter`` (a fraction) so that many clients that failed together
    do not retry together. `reset` after a success. The waiting is the caller's (through
    its clock), so that it can log the delay and be woken early."""

    def __init__(self, first_s: float, cap_s: float, *, jitter: float = 0.2) -> None:
        self._first_s = first_s
        self._cap_s = cap_s
        self._jitter = jitter
        self._next_s = first_s

    def next(self) -> float:
        """The delay to wait now; the one after it doubles (up to the cap)."""
        delay = self._next_s * random.uniform(1 - self._jitter, 1 + self._jitter)
        self._next_s = min(self._next_s * 2, self._cap_s)
        return delay

    def reset(self) -> None:
        self._next_s = self._first_s
