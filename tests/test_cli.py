"""The `tasker` command: the demo of the README's first command, and `tasker server`."""

from __future__ import annotations

import re
import signal
import subprocess

import redis

from .conftest import TASKER_BIN, alive, process_tree, run_tasker, temp_dirs_of


def test_demo_runs_a_cluster_shows_stats_and_cleans_up() -> None:
    proc = subprocess.Popen(
        [TASKER_BIN, "demo", "--tasks", "400", "--workers", "2", "--producers", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stdout + stderr
    lines = stdout.splitlines()
    assert any("2 tasker-worker daemons up" in line for line in lines)
    progress = [line for line in lines if line.startswith("[")]
    assert progress, stdout
    last = progress[-1]
    assert "400/400 100%" in last
    assert re.search(r"daemons 2 ", last)
    assert re.search(r"p95 +\d+\.\d ms", last)
    done = next(line for line in lines if line.startswith("done: "))
    completed, failed = map(int, re.findall(r"(\d+) (?:completed|failed)", done))
    assert completed + failed == 400
    assert "daemons stopped (exit codes [0, 0])" in stdout
    assert temp_dirs_of(proc.pid) == []  # no temp dir of the server or the logs is left


def test_tasker_server_serves_until_interrupted() -> None:
    proc = subprocess.Popen([TASKER_BIN, "server"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("redis://127.0.0.1:")
        client = redis.Redis.from_url(url)
        assert client.ping()
        client.close()
        [server] = process_tree(proc.pid) - {proc.pid}
        proc.send_signal(signal.SIGINT)
        assert proc.wait(15) == 0
        assert not alive(server)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    assert temp_dirs_of(proc.pid) == []


def test_commands_without_a_redis_url_explain_what_to_pass() -> None:
    out = run_tasker("stats", env={"PATH": "/usr/bin:/bin"})
    assert out.returncode == 2
    assert "--redis-url" in out.stderr
    out = run_tasker("stats", "--redis-url", "redis://127.0.0.1:1/0")
    assert out.returncode == 1
    assert "127.0.0.1:1" in out.stderr
