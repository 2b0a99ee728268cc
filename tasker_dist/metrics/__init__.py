"""The metrics layer: `Stats` and `Metrics` built from what Redis holds, and the
mergeable histogram behind the percentiles. Pure logic; imports only the core modules.
"""

from . import histogram
from .merge import merge_raw
from .stats import (
    RATE_WINDOW_S,
    Metrics,
    RawCluster,
    Stats,
    WorkerInfo,
    build_metrics,
    build_stats,
)

__all__ = [
    "RATE_WINDOW_S",
    "Metrics",
    "RawCluster",
    "Stats",
    "WorkerInfo",
    "build_metrics",
    "build_stats",
    "histogram",
    "merge_raw",
]
