"""The clients `connection.connect` opens: their command packer sends exactly what
redis-py's own would, faster for the plain arguments this library sends, and a new
connection costs no look-up of redis-py's version."""

from __future__ import annotations

import importlib.metadata
from typing import Any

import pytest
from redis.connection import PythonRespSerializer
from redis.exceptions import DataError

from tasker_dist.store.clients import connect

# Packing needs no server: the connection is made, never opened.
_UNUSED_URL = "redis://127.0.0.1:1/0"


def _packed(*args: Any) -> bytes:
    """What a client from `connect` sends for a command of ``args``."""
    connection = connect(_UNUSED_URL, timeout=1.0).connection_pool.make_connection()
    return b"".join(connection.pack_command(*args))


def _redis_py(*args: Any) -> bytes:
    """What redis-py's pure-Python packer (the reference encoding) sends."""
    packer = PythonRespSerializer(6000, lambda v: v.encode() if isinstance(v, str) else v)
    return b"".join(packer.pack(*(str(a) if isinstance(a, int | float) else a for a in args)))


@pytest.mark.parametrize(
    "args",
    [
        ("PING",),
        ("SET", "key", b"value", "PX", 1000),
        ("EVALSHA", "a" * 40, 2, "k1", "k2", "id-1", 3, "completed", b"\x00\xff", "", -1, 2.5),
        ("SET", "clé", "välue"),  # str arguments are sent as UTF-8
        ("CONFIG GET", "maxmemory-policy"),  # a command name of two words is split
        ("SET", "key", bytearray(b"from a bytearray")),  # converted, as redis-py does
        ("SET", "key", memoryview(b"from a memoryview")),
    ],
)
def test_packs_as_redis_py_does(args: tuple[Any, ...]) -> None:
    expected = _redis_py(*(bytes(a) if isinstance(a, bytearray | memoryview) else a for a in args))
    assert _packed(*args) == expected


def test_an_argument_redis_cannot_take_is_a_clear_error() -> None:
    with pytest.raises(DataError, match="str, int, float or bytes"):
        _packed("SET", "key", None)


def test_clients_work_against_a_real_server(redis_url: str, queue: str) -> None:
    client = connect(redis_url, timeout=2.0)
    try:
        key = f"{queue}:packer"
        client.set(key, bytearray(b"\x00binary\xff"))
        client.hset(key + ":h", mapping={"a": 1, "b": 2.5, "c": b"x"})
        assert client.get(key) == b"\x00binary\xff"
        assert client.hgetall(key + ":h") == {b"a": b"1", b"b": b"2.5", b"c": b"x"}
        # "CONFIG GET": two words, split
        assert "maxmemory-policy" in client.config_get("maxmemory-policy")
        pipe = client.pipeline(transaction=True)
        pipe.incr(key + ":n").incr(key + ":n")
        assert pipe.execute() == [1, 2]
    finally:
        client.close()


def test_new_connections_do_not_read_package_metadata(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """redis-py 8 looks its version up (importlib.metadata, about 1 ms) for every new
    connection unless given it: a worker process opens several as it starts."""
    looked_up: list[str] = []
    real = importlib.metadata.version
    monkeypatch.setattr(
        importlib.metadata, "version", lambda name: looked_up.append(name) or real(name)
    )
    client = connect(redis_url, timeout=2.0)
    try:
        connections = [client.connection_pool.get_connection() for _ in range(3)]
        for connection in connections:
            connection.send_command("PING")
            assert connection.read_response() in (b"PONG", "PONG", True)
            client.connection_pool.release(connection)
    finally:
        client.close()
    assert looked_up == []
