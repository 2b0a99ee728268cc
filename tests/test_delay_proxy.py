"""`tests/delay_proxy.py`, the latency the multi-host test runs under: it adds what it
is asked to each round trip, and passes Redis's traffic on whole and in order."""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tasker_dist.parent_death import spawn
from tasker_dist.store.embedded_server import EmbeddedServer

from .conftest import ROOT, wait_until

DELAY_MS = 5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def proxied(redis_server: EmbeddedServer, tmp_path: Path) -> Iterator[redis.Redis]:
    """A client of the session's server through the proxy."""
    port = _free_port()
    log_path = tmp_path / "proxy.log"
    with open(log_path, "wb") as log:
        proxy = spawn([sys.executable, "-m", "tests.delay_proxy", "--listen", f"127.0.0.1:{port}",
                       "--target", f"127.0.0.1:{redis_server.port}", "--delay-ms", str(DELAY_MS)],
                      cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        wait_until(lambda: b"ready" in log_path.read_bytes(), message="the proxy")
        client = redis.Redis(port=port, socket_timeout=10)
        yield client
        client.close()
    finally:
        proxy.terminate()
        assert proxy.wait(10) == 0, log_path.read_text()
    assert log_path.read_text().strip() == "ready"  # nothing went wrong inside


def _median_rtt_ms(client: redis.Redis) -> float:
    client.ping()
    rtts = []
    for _ in range(20):
        start = time.perf_counter()
        client.ping()
        rtts.append((time.perf_counter() - start) * 1000)
    return statistics.median(rtts)


def test_a_round_trip_gains_the_delay_asked_for(
    proxied: redis.Redis, redis_server: EmbeddedServer
) -> None:
    with redis.Redis(port=redis_server.port) as direct:
        gained = _median_rtt_ms(proxied) - _median_rtt_ms(direct)
    # At least the delay; what it adds beyond is its own work (Python, on a busy host).
    assert DELAY_MS <= gained < DELAY_MS + 5, gained


def test_pipelines_pubsub_and_large_values_pass_whole_and_in_order(
    proxied: redis.Redis, queue: str
) -> None:
    big = os.urandom(8 << 20)  # twice what the proxy holds in a direction
    proxied.set(f"{queue}:big", big)
    assert proxied.get(f"{queue}:big") == big
    pipe = proxied.pipeline(transaction=False)
    for i in range(5000):
        pipe.rpush(f"{queue}:list", i)
    pipe.lrange(f"{queue}:list", 0, -1)
    assert pipe.execute()[-1] == [str(i).encode() for i in range(5000)]
    pubsub = proxied.pubsub()
    pubsub.subscribe(f"{queue}:channel")
    wait_until(lambda: pubsub.get_message(timeout=0.1), message="the subscription")
    pipe = proxied.pipeline(transaction=False)
    for i in range(200):
        pipe.publish(f"{queue}:channel", i)
    pipe.execute()
    heard: list[int] = []

    def all_heard() -> bool:
        while message := pubsub.get_message(timeout=0.01):
            heard.append(int(message["data"]))
        return len(heard) == 200

    wait_until(all_heard, message="200 messages")
    assert heard == list(range(200))
    pubsub.close()
    proxied.delete(f"{queue}:big", f"{queue}:list")


def test_hundreds_of_connections_at_once_each_get_their_own_replies(
    proxied: redis.Redis,
) -> None:
    port = proxied.connection_pool.connection_kwargs["port"]
    connections = [socket.create_connection(("127.0.0.1", port)) for _ in range(300)]
    for i, connection in enumerate(connections):
        connection.sendall(f"ECHO {i}\r\n".encode())  # all in flight at once
    for i, connection in enumerate(connections):
        connection.settimeout(10)
        reply = b""
        while not reply.endswith(b"\r\n") or reply.count(b"\r\n") < 2:
            reply += connection.recv(100)
        assert reply == f"${len(str(i))}\r\n{i}\r\n".encode()
        connection.close()
