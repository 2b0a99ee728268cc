"""`ServedQueues` over stand-in stores, for tests of the worker's parts."""

from __future__ import annotations

from tasker_dist.wire import Signer
from tasker_dist.worker.served import ServedQueue, ServedQueues


def served_queue(name: str = "q", store: object = None, weight: int = 1) -> ServedQueue:
    """A queue served with ``store`` (anything with the methods the test's part calls)."""
    signer = Signer(None, allow_unsigned=True, queue=name)
    return ServedQueue(name, store, signer, weight)  # type: ignore[arg-type]


def served(store: object = None, name: str = "q") -> ServedQueues:
    """One queue served with ``store``."""
    return ServedQueues([served_queue(name, store)], weighted=False)
