"""`sub_queues`: the names of the sub-queues one logical queue is spread over.

One queue lives in one hash slot, so on a Redis Cluster in one master. A queue spread over
``count`` sub-queues is ``count`` ordinary queues, named so that sub-queue ``i`` falls in
the ``i``-th of ``count`` equal ranges of the 16384 slots. ``redis-cli --cluster create``
gives each master one such contiguous range, so ``count`` equal to (or a multiple of) the
number of masters puts the same share of the queue on each master; random names would
put two of three sub-queues on one master more often than not.

Producers and daemons derive the same names from the name and the count alone.
"""

from __future__ import annotations

from binascii import crc_hqx

__all__ = ["MAX_SPREAD", "sub_queues"]

#: Redis Cluster's hash slots; a key's slot is the CRC16 (XMODEM: `binascii.crc_hqx` from
#: 0) of its hash tag, here the queue's name, modulo their number.
SLOTS = 16384

#: More sub-queues than this gain nothing; finding 256 names takes about 70 ms.
MAX_SPREAD = 256


def sub_queues(name: str, count: int) -> tuple[str, ...]:
    """The sub-queues of ``name`` spread over ``count``: ``name:i`` when that name falls in
    slot range ``i``, else ``name:i.k`` for the smallest ``k`` that does; over one, the
    queue itself."""
    if not 1 <= count <= MAX_SPREAD:
        raise ValueError(f"a queue is spread over 1 to {MAX_SPREAD} sub-queues, got {count}")
    if count == 1:
        return (name,)
    names = []
    for i in range(count):
        low, high = i * SLOTS // count, (i + 1) * SLOTS // count
        candidate, k = f"{name}:{i}", 0
        while not low <= crc_hqx(candidate.encode(), 0) % SLOTS < high:
            k += 1
            candidate = f"{name}:{i}.{k}"
        names.append(candidate)
    return tuple(names)
