"""``python benchmarks/run.py --help``: the benchmark suite of issue 4 (see README.md)."""

import sys
from pathlib import Path

# Run as a script, Python puts benchmarks/ itself first on sys.path, where its modules
# could shadow installed packages; import the package from the repository root instead.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from benchmarks.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
