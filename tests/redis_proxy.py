"""A TCP proxy between tasker-dist and Redis that can lose the reply of a fetch: Redis
takes the tasks, then the connection drops before the worker hears which (a real network
fault at its worst moment, which no timing of a plain disconnect can hit reliably); and
that can cut its clients off from Redis for a while (a partition)."""

from __future__ import annotations

import contextlib
import hashlib
import socket
import threading
from urllib.parse import urlsplit

from tasker_dist.store.scripts import source

_FETCH_SHA = hashlib.sha1(source("fetch").encode()).hexdigest().encode()


def _take_command(buffer: bytearray) -> tuple[list[bytes], bytes] | None:
    """The first whole command in ``buffer`` (RESP array of bulk strings, as redis-py
    sends them): its arguments and its bytes, removed from the buffer; None if it is
    not all there yet."""
    end = buffer.find(b"\r\n")
    if end < 0:
        return None
    if buffer[:1] != b"*":  # an inline command: one line
        raw = bytes(buffer[: end + 2])
        del buffer[: end + 2]
        return raw.split(), raw
    args: list[bytes] = []
    at = end + 2
    for _ in range(int(buffer[1:end])):
        line_end = buffer.find(b"\r\n", at)
        if line_end < 0:
            return None
        size = int(buffer[at + 1 : line_end])
        start, at = line_end + 2, line_end + 2 + size + 2
        if len(buffer) < at:
            return None
        args.append(bytes(buffer[start : start + size]))
    raw = bytes(buffer[:at])
    del buffer[:at]
    return args, raw


class _Link:
    """One client connection and its own connection to Redis."""

    def __init__(self, proxy: RedisProxy, client: socket.socket) -> None:
        self.proxy = proxy
        self.client = client
        self.upstream = socket.create_connection(proxy.upstream)
        # Set (before the command goes on) when the next reply may be one to lose.
        self.watch_reply = False
        self.to_redis = threading.Thread(target=self._requests, daemon=True)
        self.to_client = threading.Thread(target=self._replies, daemon=True)
        self.to_redis.start()
        self.to_client.start()

    def cut(self) -> None:
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):  # already cut
                sock.shutdown(socket.SHUT_RDWR)

    def _requests(self) -> None:
        buffer = bytearray()
        try:
            while data := self.client.recv(65536):
                buffer += data
                while (command := _take_command(buffer)) is not None:
                    args, raw = command
                    if args[:2] == [b"EVALSHA", _FETCH_SHA] and self.proxy.losing():
                        self.watch_reply = True
                    self.upstream.sendall(raw)
        except OSError:
            pass
        finally:
            self.cut()
            self.to_client.join()
            self.client.close()
            self.upstream.close()

    def _replies(self) -> None:
        head = b""
        try:
            while data := self.upstream.recv(65536):
                if not self.watch_reply:
                    self.client.sendall(data)
                    continue
                head += data
                if b"\r\n" not in head:
                    continue
                self.watch_reply = False
                first = head[: head.index(b"\r\n")]
                # "*1": the fetch took nothing (an idle worker polls): nothing to lose.
                if first.startswith(b"*") and int(first[1:]) > 1 and self.proxy.lose_one():
                    return  # Redis ran the fetch; the worker never hears of it
                self.client.sendall(head)
                head = b""
        except OSError:
            pass
        finally:
            self.cut()


class RedisProxy:
    """Forwards every connection to the Redis at ``upstream_url``; `url` is its own.
    `lose_fetch_replies` arms it to drop the connection of the next fetches that take
    tasks, once Redis has answered them; `partition` drops every connection and refuses
    new ones until `heal`."""

    def __init__(self, upstream_url: str) -> None:
        parts = urlsplit(upstream_url)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 6379)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)  # so that `close` ends the accept loop soon
        self.url = f"redis://127.0.0.1:{self._listener.getsockname()[1]}{parts.path}"
        self._lock = threading.Lock()
        self._to_lose = 0
        self.lost = 0
        self._links: list[_Link] = []
        self._closed = threading.Event()
        self._partitioned = threading.Event()
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    def lose_fetch_replies(self, count: int) -> None:
        with self._lock:
            self._to_lose = count

    def losing(self) -> bool:
        with self._lock:
            return self._to_lose > 0

    def lose_one(self) -> bool:
        with self._lock:
            if self._to_lose <= 0:
                return False
            self._to_lose -= 1
            self.lost += 1
            return True

    def partition(self) -> None:
        self._partitioned.set()
        with self._lock:
            links, self._links = self._links, []
        for link in links:
            link.cut()

    def heal(self) -> None:
        self._partitioned.clear()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            if self._partitioned.is_set():
                client.close()
                continue
            client.setblocking(True)
            with self._lock:
                self._links.append(_Link(self, client))

    def close(self) -> None:
        self._closed.set()
        self._acceptor.join()
        self._listener.close()
        with self._lock:
            links = list(self._links)
        for link in links:
            link.cut()
            link.to_redis.join()

    def __enter__(self) -> RedisProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
