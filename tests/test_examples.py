"""The ported seed examples (examples/*.py), each run as a real program.

Every test starts ``python examples/<name>.py`` in a subprocess (each starts its own
private Redis-compatible server, as a user's script would) and checks what the seed page
says its output shows. The examples wait on results, callbacks and events rather than
sleeping, so the output order these tests rely on is fixed; the one exception is "not
blocking" printed before a callback or future reports, which relies on the main thread
printing within the 0.2 s that the task works.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

from .conftest import ROOT

TIMEOUT_S = 30


def run_example(name: str) -> list[str]:
    """Run ``examples/<name>.py``; assert it exits with 0 and logs no traceback; return
    its stdout lines."""
    env = {k: v for k, v in os.environ.items() if k != "TASKER_REDIS_URL"}
    proc = subprocess.run(
        [sys.executable, f"examples/{name}.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    report = f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert proc.returncode == 0, report
    assert "Traceback" not in proc.stderr, report
    return proc.stdout.splitlines()


def index(lines: list[str], line: str) -> int:
    """Position of the one line equal to ``line``."""
    found = [i for i, text in enumerate(lines) if text == line]
    assert len(found) == 1, f"expected {line!r} once in:\n" + "\n".join(lines)
    return found[0]


def matching(lines: list[str], pattern: str) -> list[tuple[int, re.Match[str]]]:
    """Every line that fully matches ``pattern``, with its position."""
    return [(i, m) for i, text in enumerate(lines) if (m := re.fullmatch(pattern, text))]


def test_basic_usage() -> None:
    lines = run_example("basic_usage")
    assert lines.count("INFO: Creating CalculatorResource") == 2
    for operation in ("10 * 25", "10 + 25", "100 - 40"):
        index(lines, f"Worker processing: {operation}")
    results = {
        r"Task 1 \(Multiplication\) Result: 250 \(took [0-9.]+s\)",
        r"Task 2 \(Addition\) Result: 35 \(took [0-9.]+s\)",
        r"Task 3 \(Subtraction\) Result: 60 \(took [0-9.]+s\)",
    }
    stats = index(lines, "--- Current Stats ---")
    for pattern in results:
        [(position, _)] = matching(lines, pattern)
        assert position < stats
    assert lines[stats + 2] == "Queued Tasks: 0"
    finished = index(lines, "Basic usage example finished.")
    destroyed = [i for i, t in enumerate(lines) if t == "INFO: Destroying CalculatorResource"]
    assert len(destroyed) == 2
    assert all(stats < i < finished for i in destroyed)
    assert lines[stats + 1] == "Active Workers: 2"


def test_custom_health_check() -> None:
    lines = run_example("custom_health_check")
    warn = "WARN: Detected unhealthy error: processor_crash. Worker will be replaced."
    warnings = [i for i, text in enumerate(lines) if text == warn]
    assert warnings, "\n".join(lines)
    first_warning = warnings[0]
    # The first attempt always crashes: its processor is destroyed and a new one created.
    attempt = r"Worker (\d+) processing problematic image \(might crash\), attempt (\d+)"
    attempts = matching(lines, attempt)
    crashed = next(m[1] for _, m in attempts if m[2] == "0")
    creating = r"INFO: Creating ImageProcessor (\d+)"
    created_before = {m[1] for i, m in matching(lines, creating) if i < first_warning}
    assert len(created_before) == 2
    destroyed = index(lines, f"INFO: Destroying ImageProcessor {crashed}")
    assert destroyed > first_warning
    replacements = [m[1] for i, m in matching(lines, creating) if i > destroyed]
    assert replacements, "no replacement processor was created"
    assert replacements[0] not in created_before
    # Then the retry either succeeded or crashed too, and the caller heard which.
    completed = "Problematic Image Task Completed: problematic_image_processed.jpg"
    failed = "Problematic Image Task Failed: max retries exceeded: processor_crash"
    assert (completed in lines) != (failed in lines), "\n".join(lines)
    assert len(warnings) == (1 if completed in lines else 2)
    assert len(attempts) == len(warnings) + (1 if completed in lines else 0)
    # Every processor ever created is destroyed by the end.
    created = [m[1] for _, m in matching(lines, creating)]
    gone = [m[1] for _, m in matching(lines, r"INFO: Destroying ImageProcessor (\d+)")]
    assert sorted(created) == sorted(gone)


def test_graceful_shutdown() -> None:
    lines = run_example("graceful_shutdown")
    assert lines.count("INFO: Creating ComputeResource") == 2
    initiated = index(lines, "Initiating graceful shutdown...")
    done = index(lines, "Task manager gracefully shut down.")
    destroyed = [i for i, t in enumerate(lines) if t == "INFO: Destroying ComputeResource"]
    assert len(destroyed) == 2
    finished = matching(lines, r"Worker \d+ finished Task (\d)")
    assert sorted(m[1] for _, m in finished) == ["0", "1", "2", "3", "4"]
    processing = matching(lines, r"Worker \d+ processing Task (\d)")
    assert sorted(m[1] for _, m in processing) == ["0", "1", "2", "3", "4"]
    # Resources are destroyed only after every task has finished, and stop() returns after.
    assert max(i for i, _ in finished) < min(destroyed)
    assert initiated < min(destroyed) <= max(destroyed) < done
    assert lines[done + 1] == "Final Active Workers: 0"
    assert lines[done + 2 :] == [f"Result: Task {i} completed" for i in range(5)]


def test_immediate_shutdown() -> None:
    lines = run_example("immediate_shutdown")
    assert lines.count("INFO: Creating ComputeResource") == 2
    [(started, worker)] = matching(lines, r"Worker (\d+) processing long Task\.\.\.")
    initiated = index(lines, "Initiating immediate shutdown (Kill)...")
    cancelled = index(lines, f"Task on Worker {worker[1]} cancelled due to shutdown.")
    done = index(lines, "Task manager immediately shut down.")
    destroyed = [i for i, t in enumerate(lines) if t == "INFO: Destroying ComputeResource"]
    assert len(destroyed) == 2
    assert started < initiated < cancelled < done
    assert initiated < min(destroyed) <= max(destroyed) < done
    assert lines[done + 1] == "Final Active Workers: 0"
    assert re.fullmatch(r"Long task failed: TaskCancelled: .*cancelled.*", lines[done + 2])
    assert not any("long task completed" in line for line in lines)


def test_live_stats() -> None:
    lines = run_example("live_stats")
    stats = (
        r"Active Workers: (\d+), Queued Tasks: (\d+), Running Tasks: (\d+), "
        r"Available Resources: (\d+)"
    )
    [(during_at, during)] = matching(lines, "Current Stats: " + stats)
    [(after_at, after)] = matching(lines, "Stats after task completion: " + stats)
    assert during_at < after_at
    assert during[2] == after[2] == "0"  # nothing queued, while the task runs and after
    # (active workers, running tasks, available resources): while the task runs, one
    # active worker, busy; after it, the same worker, idle.
    assert during.group(1, 3, 4) == ("1", "1", "0")
    assert after.group(1, 3, 4) == ("1", "0", "1")


def test_performance_metrics() -> None:
    lines = run_example("performance_metrics")
    values: dict[str, float] = {}
    for _, m in matching(lines, r"([A-Za-z0-9 ]+): ([0-9.]+)(ms|/sec)?"):
        values[m[1]] = float(m[2])
    assert values["Total Tasks Arrived"] == 10
    assert values["Total Tasks Completed"] == 10
    assert values["Total Tasks Failed"] == 0
    # The tasks sleep 10, 15, ..., 55 ms.
    assert values["Min Execution Time"] >= 10
    assert values["Max Execution Time"] >= 55
    assert values["Min Execution Time"] < values["Average Execution Time"]
    assert values["Average Execution Time"] < values["Max Execution Time"]
    assert values["P50 Execution Time"] > 0
    assert values["P95 Execution Time"] >= values["P50 Execution Time"]
    assert values["Task Arrival Rate"] > 0
    assert values["Task Completion Rate"] > 0
    assert values["Success Rate"] == 1.0
    assert values["Failure Rate"] == 0.0


def test_queue_and_wait() -> None:
    lines = run_example("queue_and_wait")
    [(running, _)] = matching(lines, r"Task running on MyResource \d+\.\.\.")
    finished = index(lines, "Task finished its work.")
    result = index(lines, "Task completed with result: task_done")
    assert running < finished < result


def test_queue_with_callback() -> None:
    lines = run_example("queue_with_callback")
    submitted = index(lines, "Submitted callback task, not blocking.")
    called_back = index(lines, "Callback task completed with result: callback_task_done")
    assert submitted < called_back


def test_queue_async() -> None:
    lines = run_example("queue_async")
    submitted = index(lines, "Submitted async channel task, not blocking.")
    received = index(lines, "Async channel task completed with result: channel_task_done")
    assert submitted < received
