"""benchmarks/.venv-peers: the peers' own venv, created once and reused while
requirements-peers.txt is unchanged (a hash of it is kept inside the venv)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

__all__ = ["VENV", "ensure_peers_venv", "installed_versions"]

BENCH_DIR = Path(__file__).resolve().parent
VENV = BENCH_DIR / ".venv-peers"
REQUIREMENTS = BENCH_DIR / "requirements-peers.txt"
_MARKER = VENV / "requirements.sha256"


def _python() -> Path:
    return VENV / "bin" / "python"


def ensure_peers_venv() -> Path:
    """The peers' interpreter, creating the venv and installing the peers if needed."""
    wanted = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if _python().exists() and _MARKER.exists() and _MARKER.read_text().strip() == wanted:
        return _python()
    print(f"installing the peers into {VENV} ...", file=sys.stderr, flush=True)
    if not _python().exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip = [str(_python()), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "-r", str(REQUIREMENTS)], check=True)
    _MARKER.write_text(wanted + "\n")
    return _python()


_VERSIONS_SCRIPT = """
import importlib.metadata as m, json, sys
found = {}
for name in sys.argv[1:]:
    try:
        found[name] = m.version(name)
    except m.PackageNotFoundError:
        found[name] = None
print(json.dumps(found))
"""


def installed_versions(python: Path | str, distributions: Iterable[str]) -> dict[str, str | None]:
    """Versions of ``distributions`` as installed for ``python`` (None: not installed)."""
    out = subprocess.run(
        [str(python), "-c", _VERSIONS_SCRIPT, *distributions],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    found: dict[str, str | None] = json.loads(out.stdout)
    return found
