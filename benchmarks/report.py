"""Medians over runs, ratios against the fastest peer and the floor of the same run, and
the markdown written between the markers of benchmarks/README.md."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "FIGURES",
    "Figure",
    "RunResults",
    "Summary",
    "render",
    "replace_between_markers",
    "summarize",
]

#: One run: system -> workload -> figures (or {"error": message}).
RunResults = dict[str, dict[str, dict[str, Any]]]

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
FLOOR = "floor"
SLEEP_S = 0.01  # W3's task


@dataclass(frozen=True)
class Figure:
    workload: str
    key: str
    label: str
    unit: str
    higher_is_better: bool

    @property
    def id(self) -> str:
        """``workload.key``: keys repeat between workloads (W1's and W5's drain_rate)."""
        return f"{self.workload}.{self.key}"


FIGURES = (
    Figure("w1", "drain_rate", "W1 drain, from worker start to last result", "tasks/s", True),
    Figure("w1", "drain_rate_steady", "W1 drain, first to last result", "tasks/s", True),
    Figure("w1", "enqueue_rate", "W1 enqueue, one at a time", "tasks/s", True),
    Figure("w1", "enqueue_p50_ms", "single enqueue round trip, median", "ms", False),
    Figure("w2", "p50_ms", "W2 round trip p50", "ms", False),
    Figure("w2", "p95_ms", "W2 round trip p95", "ms", False),
    Figure("w2", "p99_ms", "W2 round trip p99", "ms", False),
    Figure("w3", "drain_s", "W3 drain of the 10 ms sleeps, 2 processes", "s", False),
    Figure("w3", "drain_from_start_s", "W3 drain from the first task's start", "s", False),
    Figure("w4", "batch_enqueue_rate", "W4 batch enqueue", "tasks/s", True),
    Figure("w1", "peak_rss_mb", "W4 peak RSS of the W1 workers", "MiB", False),
    Figure("w1", "redis_commands_per_task", "W1 Redis commands per task", "commands", False),
    Figure("w1", "redis_cpu_us_per_task", "W1 Redis CPU per task", "us", False),
    Figure("w1", "workers_cpu_us_per_task", "W1 workers' CPU per task (start-up in)", "us", False),
    Figure("w5", "drain_rate", "W5 one round trip each: drain from worker start", "tasks/s", True),
    Figure("w5", "drain_rate_steady", "W5 drain, first to last result", "tasks/s", True),
    Figure(
        "w5",
        "redis_commands_per_task",
        "W5 Redis commands per task (own GET out)",
        "commands",
        False,
    ),
    Figure("w5", "redis_cpu_us_per_task", "W5 Redis CPU per task (its GET in)", "us", False),
    Figure("w5", "workers_cpu_us_per_task", "W5 workers' CPU per task (start-up in)", "us", False),
    Figure("w6", "drain_rate", "W6 1 ms of CPU each: drain from worker start", "tasks/s", True),
    Figure("w6", "drain_rate_steady", "W6 drain, first to last result", "tasks/s", True),
    Figure(
        "w7", "drain_rate", "W7 1 ms blocking each, 2 x 8: drain from worker start", "tasks/s", True
    ),
    Figure("w7", "drain_rate_steady", "W7 drain, first to last result", "tasks/s", True),
    Figure("w7", "redis_commands_per_task", "W7 Redis commands per task", "commands", False),
)


@dataclass(frozen=True)
class Summary:
    """One figure of one system over all runs: medians of the per-run values and of the
    per-run ratios (a ratio > 1 means more of the unit: faster for rates, slower for
    times); None where nothing was measured."""

    value: float | None
    vs_peer: float | None
    vs_floor: float | None
    runs: int
    note: str = ""


def _value(run: RunResults, system: str, figure: Figure) -> float | None:
    value = run.get(system, {}).get(figure.workload, {}).get(figure.key)
    return float(value) if isinstance(value, int | float) else None


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _ratio(value: float | None, reference: float | None) -> float | None:
    return None if value is None or not reference else value / reference


def _note(runs: Sequence[RunResults], system: str, figure: Figure) -> str:
    """What a reader must know about a median: W3's better task kind, a short W2."""
    results = [r.get(system, {}).get(figure.workload, {}) for r in runs]
    if figure.key == "drain_s":
        kinds = Counter(str(r["sleep_kind"]) for r in results if "sleep_kind" in r)
        if set(kinds) - {"sleep"}:  # say when the async task was the faster one
            return ", ".join(f"{kind} best {n}/{len(results)}" for kind, n in kinds.items())
    if figure.workload == "w2" and figure.key == "p50_ms":
        counts = {int(r["round_trips"]) for r in results if "round_trips" in r}
        if counts and max(counts) < 1000:
            return f"n={'/'.join(str(c) for c in sorted(counts))}"
    return ""


def summarize(
    runs: Sequence[RunResults], systems: Sequence[str], peers: Sequence[str]
) -> dict[tuple[str, str], Summary]:
    """(system, figure id) -> Summary, ratios taken within each run before the median."""
    out: dict[tuple[str, str], Summary] = {}
    for figure in FIGURES:
        pick = max if figure.higher_is_better else min
        per_run_best: list[float | None] = []
        for run in runs:
            found = [_value(run, p, figure) for p in peers]
            measured = [v for v in found if v is not None]
            per_run_best.append(pick(measured) if measured else None)
        floors = [_value(run, FLOOR, figure) for run in runs]
        for system in systems:
            values = [_value(run, system, figure) for run in runs]
            out[(system, figure.id)] = Summary(
                value=_median(values),
                vs_peer=_median([_ratio(v, b) for v, b in zip(values, per_run_best, strict=True)]),
                vs_floor=_median([_ratio(v, f) for v, f in zip(values, floors, strict=True)]),
                runs=sum(v is not None for v in values),
                note=_note(runs, system, figure),
            )
    return out


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit in ("tasks/s", "MiB"):
        return f"{value:,.0f}"
    if unit == "s":
        return f"{value:.3f}"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def _ratio_text(value: float | None) -> str:
    if value is None:
        return "—"
    if value >= 10:
        return f"{value:.0f}x"
    return f"{value:.2f}x" if value >= 0.1 else f"{value:.2g}x"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _problems(runs: Sequence[RunResults], kind: str) -> list[str]:
    """One line per run that failed (``kind`` "error") or measured with a "warning"."""
    lines = []
    for index, run in enumerate(runs, 1):
        for system, workloads in run.items():
            for workload, figures in workloads.items():
                if kind in figures:
                    message = " ".join(str(figures[kind]).split())[:400]
                    lines.append(f"- run {index}, {system} {workload}: {message}")
    return lines


def w3_ideal_s(sizes: Mapping[str, Any]) -> float:
    """W3's lower bound: every slot of both processes sleeping all the time."""
    return float(sizes["io_tasks"] * SLEEP_S / (2 * sizes["io_concurrency"]))


def _targets(s: Mapping[tuple[str, str], Summary], ideal_s: float) -> list[str]:
    """Issue 4's targets for tasker-dist, against this run's medians."""

    def get(key: str) -> Summary:
        return s.get(("tasker-dist", key), Summary(None, None, None, 0))

    def check(ok: bool | None) -> str:
        return "—" if ok is None else ("met" if ok else "**missed**")

    def ge(value: float | None, bound: float) -> bool | None:
        return None if value is None else value >= bound

    def le(value: float | None, bound: float) -> bool | None:
        return None if value is None else value <= bound

    drain, steady, w3 = get("w1.drain_rate"), get("w1.drain_rate_steady"), get("w3.drain_s")
    p50, p99 = get("w2.p50_ms"), get("w2.p99_ms")
    batch, single = get("w4.batch_enqueue_rate"), get("w1.enqueue_p50_ms")
    w3_ideal = None if w3.value is None else w3.value / ideal_s
    rows = [
        ("W1 drain >= 10x the fastest peer", _ratio_text(drain.vs_peer), ge(drain.vs_peer, 10)),
        ("(W1 drain without start-up, first to last result)", _ratio_text(steady.vs_peer),
         ge(steady.vs_peer, 10)),
        ("W1 drain >= 50% of the floor", _ratio_text(drain.vs_floor), ge(drain.vs_floor, 0.5)),
        ("(W1 drain without start-up, first to last result)", _ratio_text(steady.vs_floor),
         ge(steady.vs_floor, 0.5)),
        ("W2 p50 <= 1.0 ms", _number(p50.value, "ms") + " ms", le(p50.value, 1.0)),
        ("W2 p99 <= 3 ms", _number(p99.value, "ms") + " ms", le(p99.value, 3.0)),
        (f"W3 <= 1.5x the ideal {ideal_s:.3f} s", _ratio_text(w3_ideal), le(w3_ideal, 1.5)),
        ("batch enqueue >= 50,000 tasks/s", _number(batch.value, "tasks/s"),
         ge(batch.value, 50_000)),
        ("single enqueue <= 2x one bare LPUSH round trip", _ratio_text(single.vs_floor),
         le(single.vs_floor, 2.0)),
    ]  # fmt: skip
    return _table(
        ["target (issue 4)", "tasker-dist", ""], [[what, got, check(ok)] for what, got, ok in rows]
    )


def render(
    runs: Sequence[RunResults],
    systems: Sequence[str],
    peers: Sequence[str],
    meta: Mapping[str, Any],
    sizes: Mapping[str, Any],
    targets: bool = True,
) -> str:
    """The markdown of one suite run: what ran where, figures, ratios, targets (unless
    ``targets`` is False), warnings and failures."""
    s = summarize(runs, systems, peers)
    figures = [f for f in FIGURES if any(s[(x, f.id)].runs for x in systems)]

    def cell(system: str, figure: Figure) -> str:
        summary = s[(system, figure.id)]
        text = _number(summary.value, figure.unit)
        return f"{text} ({summary.note})" if summary.note else text

    values = [[f"{f.label} ({f.unit})", *(cell(x, f) for x in systems)] for f in figures]
    ratios = [
        [f.label, *(f"{_ratio_text(s[(x, f.id)].vs_peer)} / {_ratio_text(s[(x, f.id)].vs_floor)}"
                    for x in systems)]
        for f in figures
    ]  # fmt: skip
    out = [
        f"Command: `{meta['command']}` ({meta['date']}; medians of {len(runs)} run(s)).",
        "",
        f"Machine: {meta['cpu']}, {meta['cores']} cores, {meta['ram_gib']:.0f} GiB RAM, "
        f"Linux {meta['kernel']}; Python {meta['python']}; Redis {meta['redis']} (one "
        "local redis-server, no persistence, flushed before every workload). "
        f"Load average {meta['load_before']} before, {meta['load_after']} after: a shared "
        "2-core machine with other work running, so differences under ~20% are noise.",
        "",
        f"tasker-dist measured at this repository's commit {meta['tasker_revision']}. "
        "Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()) + ".",
        "",
        f"Sizes: W1 and W4 {sizes['tasks']:,} no-op tasks; W2 {sizes['round_trips']:,} round "
        f"trips (fewer where a system polls so slowly that {sizes['round_trip_budget_s']:.0f} s "
        f"run out: n= says how many); W3 {sizes['io_tasks']:,} tasks sleeping "
        f"{SLEEP_S * 1000:.0f} ms on 2 processes x {sizes['io_concurrency']} slots "
        f"(ideal {w3_ideal_s(sizes):.3f} s); W5 {sizes['tasks']:,} tasks each making one "
        "blocking round trip to Redis on a connection of its own (a GET), 2 processes; "
        f"W6 {sizes['work_tasks']:,} tasks of 1 ms of CPU, 2 processes (ideal "
        f"{sizes['work_tasks'] / 2000:.1f} s); W7 {sizes['work_tasks']:,} tasks blocking 1 ms, "
        f"2 processes x {sizes['work_concurrency']} (ideal "
        f"{sizes['work_tasks'] / 1000 / (2 * sizes['work_concurrency']):.3f} s).",
        "",
        "Figures (median over runs; rates: higher is better; ms, s and MiB: lower is better):",
        "",
        *_table(["figure", *systems], values),
        "",
        "Ratios: each figure divided by the fastest peer's and by the floor's of the same run "
        "(median over runs). For rates > 1 is faster; for ms, s and MiB < 1 is better.",
        "",
        *_table(["figure (x fastest peer / x floor)", *systems], ratios),
    ]
    if targets and "tasker-dist" in systems:  # issue 4's targets hold for the full sizes
        out += ["", *_targets(s, w3_ideal_s(sizes))]
    if warnings := _problems(runs, "warning"):
        out += ["", "Warnings:", "", *warnings]
    if errors := _problems(runs, "error"):
        out += ["", "Failures:", "", *errors]
    return "\n".join(out) + "\n"


def replace_between_markers(path: Path, body: str) -> None:
    """Put ``body`` between the results markers of ``path`` (appended if they are absent)."""
    text = path.read_text() if path.exists() else ""
    block = f"{BEGIN}\n{body}{END}"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)
