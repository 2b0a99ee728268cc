"""The command line: ``tasker`` (stats, metrics, stop, the failed store, the demo, a
local server) and ``tasker-worker``. The top layer: it may import any other, and
nothing imports it.
"""

__all__: list[str] = []
