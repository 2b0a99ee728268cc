"""The Redis layer: the only package that imports redis-py.

The key schema, the Lua scripts and what each call of them sends, connections, the
threaded and asyncio stores of one queue, and the local server used when no Redis is
given. Every error leaves it as `RedisUnavailable`. Imports the core, wire and metrics
layers.
"""

from .async_queue_store import AsyncQueueStore
from .calls import Fetched, Finished, Heartbeat
from .clients import MAX_CONNECTIONS
from .embedded_server import EmbeddedServer, find_server_binary
from .keys import QueueKeys
from .queue_store import QueueStore

__all__ = [
    "MAX_CONNECTIONS",
    "AsyncQueueStore",
    "EmbeddedServer",
    "Fetched",
    "Finished",
    "Heartbeat",
    "QueueKeys",
    "QueueStore",
    "find_server_binary",
]
