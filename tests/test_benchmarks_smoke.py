"""The benchmark suite's smoke mode (issue 4), so that the harness cannot rot: every
workload yields numbers for tasker-dist and the floor, and the run leaves no process
behind. Nothing here asserts speed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from benchmarks.report import FIGURES

from .conftest import ROOT


def _processes_mentioning(text: bytes) -> list[int]:
    """Pids whose command line or environment holds ``text`` (e.g. the server's port)."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            cmdline = Path(entry.path, "cmdline").read_bytes()
            environ = Path(entry.path, "environ").read_bytes()
        except OSError:
            continue
        if text in cmdline or text in environ:
            found.append(int(entry.name))
    return found


def test_smoke_run_measures_every_workload_and_cleans_up(tmp_path: Path) -> None:
    out = tmp_path / "smoke.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--smoke", "--json", str(out)],
        check=False, cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    document = json.loads(out.read_text())
    (run,) = document["runs"]
    for system in ("floor", "tasker-dist"):
        for figure in FIGURES:
            value = run[system][figure.workload].get(figure.key)
            assert isinstance(value, float), (system, figure.key, run[system][figure.workload])
            assert value > 0, (system, figure.key, value)
    assert "| W2 round trip p50 (ms) |" in proc.stdout
    # No driver, worker (both name the server's URL) or redis-server (its port) is left.
    url = document["meta"]["redis_url"].encode()
    port = url.rsplit(b":", 1)[1].split(b"/")[0]
    assert _processes_mentioning(url) == []
    assert _processes_mentioning(b"--port\x00" + port + b"\x00") == []


def test_soak_reports_no_loss_no_leftovers_and_memory_back(tmp_path: Path) -> None:
    # The soak's own checks (exit code 0): every task completed, nothing left in any
    # in-flight structure, Redis's memory back to where it started once results expired.
    # The soak waits out the result TTL (before and after the run): a short one.
    out = tmp_path / "soak.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "soak.py"), "--tasks", "5000",
         "--result-ttl", "0.5", "--json", str(out)],
        check=False, cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "lost: 0; left in flight: 0" in proc.stdout
    soak = json.loads(out.read_text())
    assert soak["completed"] == 5000
    assert soak["samples"], "sampled at least once"
    assert soak["samples"][-1]["in_flight"]["held (all workers)"] == 0


def test_profile_worker_reports_cpu_per_task_and_cleans_up(tmp_path: Path) -> None:
    # --no-spy: the CPU accounting without py-spy, through a supervisor and 2 processes.
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "profile_worker.py"), "--no-spy",
         "--tasks", "2000", "--processes", "2"],
        check=False, cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "TMPDIR": str(tmp_path)},  # the server's directory: ours
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "2,000 tasks, 2 worker process(es): drained in" in proc.stdout
    assert "CPU per task: Redis" in proc.stdout
    assert _processes_mentioning(str(tmp_path).encode()) == []


def test_scaling_measures_every_topology_and_daemon_count_and_cleans_up(tmp_path: Path) -> None:
    # Clusters of 1 and 2 masters (and the plain server), 1 and 2 daemons, 2,000 tasks.
    out = tmp_path / "scaling.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "scaling.py"), "--smoke", "--masters", "1,2",
         "--json", str(out)],
        check=False, cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "TMPDIR": str(tmp_path)},  # the servers' directories: ours
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    runs = json.loads(out.read_text())["runs"]
    measured = {(r["masters"], r["daemons"]) for r in runs}
    assert measured == {(m, d) for m in (0, 1, 2) for d in (1, 2)}
    for run in runs:  # every task counted completed (else exit 1), at some rate
        assert run["tasks"] == 2000
        assert run["tasks_per_s"] > 0
        assert run["redis_us_per_task"] >= run["busiest_master_us_per_task"] >= 0
    assert "| cluster, 2 masters |" in proc.stdout
    assert _processes_mentioning(str(tmp_path).encode()) == []
