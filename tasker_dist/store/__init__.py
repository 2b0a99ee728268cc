"""The Redis layer: the only package that imports redis-py.

The key schema, the Lua scripts and what each call of them sends, connections, the
threaded and asyncio stores of one queue, and the local server used when no Redis is
given. Every error leaves it as `RedisUnavailable`. Imports the core, wire and metrics
layers.
"""
