"""A TCP proxy that adds latency, for a kernel without netem: each chunk read from one
side is written to the other ``delay_ms / 2`` later, in each direction, so a round trip
through it gains ``delay_ms``. Order is kept (one FIFO per direction, each chunk due
after the one before it), and so is Redis's traffic of any shape: pipelines, pub/sub,
thousands of connections, frames of any size (a full FIFO stops the reading side, so a
fast sender cannot fill memory). A half-close is passed on, after the delay.

    python -m tests.delay_proxy --listen 10.231.1.1:6379 --listen 10.231.2.1:6379 \\
        --target 127.0.0.1:6379 --delay-ms 5

prints "ready" once it listens on every ``--listen`` address, and runs until killed."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import os
import resource
import select
import selectors
import signal
import time

__all__ = ["DelayProxy", "main"]

CHUNK = 65536
#: Chunks in flight per direction before the reading side waits: 4 MiB at most.
QUEUED = 64


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


class PreciseSelector(selectors.EpollSelector):
    """The event loop's selector, on time to the tens of microseconds: epoll waits whole
    milliseconds (Python rounds a timeout up: a chunk due in 2.5 ms would go after 3),
    so a timerfd armed for each wait wakes it when the wait is over."""

    def __init__(self) -> None:
        super().__init__()
        self._libc = ctypes.CDLL(None, use_errno=True)
        # TFD_NONBLOCK and TFD_CLOEXEC are O_NONBLOCK and O_CLOEXEC.
        fd = self._libc.timerfd_create(time.CLOCK_MONOTONIC, os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "timerfd_create failed")
        self._timer: int = fd
        # On the epoll object itself: the selector has no key for it, so it only wakes.
        epoll: select.epoll = self._selector  # type: ignore[attr-defined]
        epoll.register(fd, select.EPOLLIN)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        # Arming (or disarming, with 0) also clears an expiry not read yet.
        ns = max(int(timeout * 1e9), 1) if timeout is not None and timeout > 0 else 0
        spec = _Itimerspec(_Timespec(0, 0), _Timespec(ns // 10**9, ns % 10**9))
        if self._libc.timerfd_settime(self._timer, 0, ctypes.byref(spec), None) != 0:
            raise OSError(ctypes.get_errno(), "timerfd_settime failed")
        return super().select(timeout)

    def close(self) -> None:
        super().close()
        os.close(self._timer)


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


class DelayProxy:
    def __init__(self, target: tuple[str, int], delay_ms: float) -> None:
        self.target = target
        self.one_way_s = delay_ms / 2000

    async def serve(self, listen: list[tuple[str, int]]) -> list[asyncio.Server]:
        return [await asyncio.start_server(self._connection, host, port, backlog=1024)
                for host, port in listen]  # fmt: skip

    async def _connection(
        self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter
    ) -> None:
        with contextlib.suppress(asyncio.CancelledError):  # the proxy is stopping
            await self._relay(client_r, client_w)

    async def _relay(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            upstream_r, upstream_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.close()
            return
        pumps = [asyncio.create_task(self._pump(client_r, upstream_w)),
                 asyncio.create_task(self._pump(upstream_r, client_w))]  # fmt: skip
        try:
            # Both directions end (a half-close lets the other run on); if one fails,
            # the connection is over for both.
            await asyncio.wait(pumps, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            for task in pumps:
                task.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            for writer in (client_w, upstream_w):
                writer.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy ``reader`` to ``writer``, each chunk ``one_way_s`` after it was read."""
        loop = asyncio.get_running_loop()
        fifo: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(QUEUED)

        async def read() -> None:
            try:
                while data := await reader.read(CHUNK):
                    await fifo.put((loop.time() + self.one_way_s, data))
            except OSError:
                pass  # the connection was reset: pass on what came before, then end
            await fifo.put((loop.time() + self.one_way_s, b""))

        reading = asyncio.create_task(read())
        try:
            while True:
                due, data = await fifo.get()
                if (wait := due - loop.time()) > 0:
                    await asyncio.sleep(wait)
                if not data:
                    with contextlib.suppress(OSError):
                        if writer.can_write_eof():
                            writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()
        finally:
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reading


async def _run(listen: list[tuple[str, int]], target: tuple[str, int], delay_ms: float) -> None:
    servers = await DelayProxy(target, delay_ms).serve(listen)
    print("ready", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    for server in servers:
        server.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.delay_proxy",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--listen", action="append", required=True, type=_address,
                        metavar="HOST:PORT", help="listen here (repeatable)")  # fmt: skip
    parser.add_argument("--target", required=True, type=_address, metavar="HOST:PORT")
    parser.add_argument("--delay-ms", type=float, required=True,
                        help="added to each round trip (half each way)")  # fmt: skip
    args = parser.parse_args(argv)
    # Two descriptors a connection: take all the process may have.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with asyncio.Runner(loop_factory=lambda: asyncio.SelectorEventLoop(PreciseSelector())) as r:
        r.run(_run(args.listen, args.target, args.delay_ms))


if __name__ == "__main__":
    main()
