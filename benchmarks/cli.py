"""The orchestrator: ``python benchmarks/run.py [--runs N] [--only ...] [--workloads ...]
[--smoke]``. Runs in the repository's environment; starts the redis-server, then one
driver process per (run, system, workload), each with the interpreter that has the
system installed, and writes the results."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .peers_venv import ensure_peers_venv, installed_versions
from .procs import die_with_parent
from .redis_server import RedisServer
from .report import RunResults, render, replace_between_markers
from .systems.base import REPO_ROOT
from .systems.registry import PEERS, SYSTEMS
from .workloads import WORKLOADS, Sizes

__all__ = ["main"]

BENCH_DIR = Path(__file__).resolve().parent
README = BENCH_DIR / "README.md"
RESULTS_JSON = BENCH_DIR / "results.json"
SMOKE_SYSTEMS = ["floor", "tasker-dist"]
_TEMP_PREFIX = "tasker-bench-"
SMOKE_SIZES = Sizes(
    tasks=200, round_trips=50, io_tasks=100, io_concurrency=10, warmup=5, work_tasks=100,
    round_trip_budget_s=20, drain_timeout_s=30, idle_timeout_s=3,
)  # fmt: skip


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python benchmarks/run.py",
        description="Run the benchmark suite of tasker-dist against its peers (issue 4).",
    )
    p.add_argument("--runs", type=int, help="runs of every figure (default 3; smoke: 1)")
    p.add_argument("--only", help=f"comma-separated systems (default all: {','.join(SYSTEMS)})")
    p.add_argument("--workloads", help=f"comma-separated ({','.join(WORKLOADS)}; default all)")
    p.add_argument(
        "--smoke",
        action="store_true",
        help="tiny sizes, 1 run, tasker-dist and the floor only (no peers' venv needed)",
    )
    p.add_argument("--json", type=Path, help="also write every per-run figure here")
    p.add_argument(
        "--timeout", type=float, help="seconds one workload of one system may take (900)"
    )
    return p


def _pick(value: str | None, known: Sequence[str], default: Sequence[str], what: str) -> list[str]:
    if value is None:
        return list(default)
    chosen = [v.strip() for v in value.split(",") if v.strip()]
    if unknown := [v for v in chosen if v not in known]:
        raise SystemExit(f"unknown {what}: {', '.join(unknown)} (known: {', '.join(known)})")
    return [k for k in known if k in chosen]  # table order, not command-line order


def _run_driver(
    python: str, system: str, workload: str, url: str, sizes: Sizes, log: Path, timeout_s: float
) -> dict[str, Any]:
    """One workload of one system in a driver process; its figures, or {"error": ...}."""
    command = [python, "-m", "benchmarks.driver", system, workload, "--redis-url", url,
               "--sizes", json.dumps(dataclasses.asdict(sizes)), "--log", str(log)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    # A session of its own: the driver's workers share its process group, so killing the
    # group afterwards removes anything a failed run left behind.
    proc = subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True,
        preexec_fn=die_with_parent,  # noqa: PLW1509 (prctl only)
    )  # fmt: skip
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        out, err = "", f"timed out after {timeout_s:.0f}s"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    lines = out.strip().splitlines()
    if proc.returncode == 0 and lines:
        figures: dict[str, Any] = json.loads(lines[-1])
        return figures
    error_lines = err.strip().splitlines() or ["no output"]
    log_tail = log.read_text(errors="replace").splitlines()[-15:] if log.exists() else []
    return {
        "error": error_lines[-1],  # the exception, for the table and the progress line
        "detail": "\n".join([*error_lines[-30:], "workers' log tail:", *log_tail]),
    }


def _describe_machine(server: RedisServer) -> dict[str, Any]:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")), platform.processor() or "unknown CPU",
    )  # fmt: skip
    mem_kib = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gib": mem_kib / 2**20,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "redis": server.version(),
    }


def _git(*args: str) -> str:
    # check=False: outside a git checkout the revision is just unknown.
    done = subprocess.run(
        ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    return done.stdout.strip()


def _tasker_revision() -> str:
    """The commit of the tasker-dist being measured (the working tree, installed editable),
    and whether tasker_dist/ differs from it."""
    commit = _git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = _git("status", "--porcelain", "--", "tasker_dist")
    return f"{commit} + uncommitted changes" if dirty else commit


def _tasker_code() -> str:
    """What identifies the measured code: tasker_dist/'s tree and any uncommitted diff
    (commits that touch only other files, such as these results, do not change it)."""
    return _git("rev-parse", "HEAD:tasker_dist") + _git("diff", "HEAD", "--", "tasker_dist")


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _versions(systems: Sequence[str], peers_python: Path | None) -> dict[str, str | None]:
    ours = [d for s in systems if not SYSTEMS[s].peer for d in SYSTEMS[s].distributions]
    versions = installed_versions(sys.executable, dict.fromkeys(ours))
    if peers_python is not None:
        theirs = [d for s in systems if SYSTEMS[s].peer for d in SYSTEMS[s].distributions]
        extra = ["redis", "hiredis", "kombu", "billiard", "anyio"]
        peer_versions = installed_versions(peers_python, dict.fromkeys([*theirs, *extra]))
        versions |= {f"{name} (peers)" if name in versions else name: v
                     for name, v in peer_versions.items()}  # fmt: skip
    return versions


def _sweep_stale_temp_dirs() -> None:
    """Remove the temporary directories of earlier runs whose orchestrator was killed
    before it could (SIGKILL): each is named after its orchestrator's pid."""
    for path in Path(tempfile.gettempdir()).glob(f"{_TEMP_PREFIX}*-*"):
        pid = path.name.removeprefix(_TEMP_PREFIX).split("-", 1)[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(path, ignore_errors=True)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    # SIGTERM would end the orchestrator without its finally blocks; as an exception it
    # stops the current driver's process group, the redis-server and the temp directory.
    raise SystemExit(128 + signum)


def _measure(
    systems: Sequence[str],
    workloads: Sequence[str],
    runs: int,
    sizes: Sizes,
    timeout_s: float,
    peers_python: Path | None,
) -> tuple[dict[str, Any], list[RunResults]]:
    """Every (run, system, workload), interleaved by run; the machine described."""
    pythons = {s: str(peers_python) if SYSTEMS[s].peer else sys.executable for s in systems}
    all_runs: list[RunResults] = []
    _sweep_stale_temp_dirs()
    with (
        tempfile.TemporaryDirectory(prefix=f"{_TEMP_PREFIX}{os.getpid()}-") as tmp,
        RedisServer(Path(tmp) / "redis") as server,
    ):
        meta: dict[str, Any] = {
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "load_before": _load(),
            "tasker_revision": _tasker_revision(),
            "redis_url": server.url,
            **_describe_machine(server),
            "versions": _versions(systems, peers_python),
        }
        code_at_start = _tasker_code()
        for run in range(1, runs + 1):
            results: RunResults = {}
            for system in systems:
                for workload in workloads:
                    server.flush()
                    log = Path(tmp) / f"{system}-{workload}-{run}.log"
                    figures = _run_driver(
                        pythons[system], system, workload, server.url, sizes, log, timeout_s
                    )
                    results.setdefault(system, {})[workload] = figures
                    shown = figures.get("error", figures)  # the detail goes to the JSON
                    print(f"[run {run}/{runs}] {system} {workload}: {shown}", file=sys.stderr)
            all_runs.append(results)
        meta["load_after"] = _load()
        if _tasker_code() != code_at_start:
            meta["tasker_revision"] += (
                f" at the start, {_tasker_revision()} at the end: tasker_dist/ changed "
                "during the runs, so they measured different code"
            )
    return meta, all_runs


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    raw = sys.argv[1:] if argv is None else argv
    args = _parser().parse_args(raw)
    all_systems, all_workloads = list(SYSTEMS), list(WORKLOADS)
    default_systems = SMOKE_SYSTEMS if args.smoke else all_systems
    systems = _pick(args.only, all_systems, default_systems, "system")
    workloads = _pick(args.workloads, all_workloads, all_workloads, "workload")
    runs = args.runs or (1 if args.smoke else 3)
    sizes = SMOKE_SIZES if args.smoke else Sizes()
    timeout_s = args.timeout or (120 if args.smoke else 900)
    peers_python = ensure_peers_venv() if any(SYSTEMS[s].peer for s in systems) else None

    meta, all_runs = _measure(systems, workloads, runs, sizes, timeout_s, peers_python)
    meta["command"] = shlex.join(["python", "benchmarks/run.py", *raw])
    peers = [s for s in systems if s in PEERS]
    text = render(all_runs, systems, peers, meta, dataclasses.asdict(sizes), targets=not args.smoke)
    print(text)
    document = {"meta": meta, "sizes": dataclasses.asdict(sizes), "runs": all_runs}
    if args.json is not None:
        args.json.write_text(json.dumps(document, indent=1) + "\n")
    if not args.smoke and systems == all_systems and workloads == all_workloads:
        RESULTS_JSON.write_text(json.dumps(document, indent=1) + "\n")
        replace_between_markers(README, text)
    failed = any("error" in f for r in all_runs for w in r.values() for f in w.values())
    return 1 if failed else 0
