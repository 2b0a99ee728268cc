"""The package's layers: a module may import its own layer and the layers below it, and
another layer only through that layer's package (the names in its ``__all__``).

    cli                      the command lines
    manager                  TaskManager: a producer and a worker in one object
    client | worker          producers and the listener | the worker runtime (peers)
    store                    the Redis layer: the only one that imports redis-py
    wire | metrics           what travels through Redis | stats from what Redis holds
    core                     the top-level modules: errors, status, clock, config, ...

The package's ``__init__`` (the public API) sits above all but the command line; a
``__main__`` module (``python -m tasker_dist.worker``) is part of the command line.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from pathlib import Path

import pytest

import tasker_dist

PACKAGE = Path(tasker_dist.__file__).parent
RANK = {"core": 0, "wire": 1, "metrics": 1, "store": 2, "client": 3, "worker": 3,
        "manager": 4, "api": 5, "cli": 6}  # fmt: skip
REDIS_CLIENTS = ("redis", "hiredis")


def modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        yield ".".join(["tasker_dist", *parts]).removesuffix(".__init__"), path


def layer_of(module: str) -> str:
    """``tasker_dist.worker.slot`` -> worker; top-level modules are core; a ``__main__``
    module is an entry point, part of the command line wherever it sits."""
    parts = module.split(".")
    if module == "tasker_dist":
        return "api"
    if parts[-1] == "__main__":
        return "cli"
    if len(parts) == 2 and not (PACKAGE / parts[1]).is_dir():
        return "core"
    return parts[1]


def imports(module: str, path: Path) -> Iterator[tuple[int, str, list[str]]]:
    """(line, imported module, names) for every import, relative ones resolved."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, []
        elif isinstance(node, ast.ImportFrom):
            target = node.module or ""
            if node.level:
                base = module.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, *([target] if target else [])])
            yield node.lineno, target, [a.name for a in node.names]


def test_the_layer_table_knows_every_folder() -> None:
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders <= RANK.keys()


def violations(module: str, path: Path) -> Iterator[str]:
    own = layer_of(module)
    for line, target, names in imports(module, path):
        where = f"{path.name}:{line}"
        top = target.split(".")[0]
        if top in REDIS_CLIENTS and own != "store":
            yield f"{where}: {own} imports {target}; Redis I/O belongs in store/"
        if top != "tasker_dist":
            continue
        other = layer_of(target)
        if other == own:
            continue
        if RANK[other] >= RANK[own]:
            yield f"{where}: {own} imports {target} ({other} is not below {own})"
            continue
        if other == "core" or own == "api":
            continue
        package = f"tasker_dist.{other}"
        if target != package:
            yield f"{where}: imports {target}, not the {other} package's interface"
            continue
        exported = importlib.import_module(package).__all__
        yield from (f"{where}: {n} is not in {package}.__all__" for n in names if n not in exported)


@pytest.mark.parametrize("module", [name for name, _ in modules()])
def test_a_module_imports_only_its_own_layer_and_the_interfaces_of_lower_ones(
    module: str,
) -> None:
    path = dict(modules())[module]
    assert list(violations(module, path)) == []


def test_the_check_catches_each_kind_of_mistake(tmp_path: Path) -> None:
    """The test above must fail for the mistakes it is there for."""
    wrong = tmp_path / "fetcher.py"
    wrong.write_text(
        "import redis\n"
        "from ..client import Producer\n"
        "from ..store.keys import QueueKeys\n"
        "from ..store import NotExported\n"
        "from ..errors import RedisUnavailable\n"
        "from .job import Job\n"
    )
    assert list(violations("tasker_dist.worker.fetcher", wrong)) == [
        "fetcher.py:1: worker imports redis; Redis I/O belongs in store/",
        "fetcher.py:2: worker imports tasker_dist.client (client is not below worker)",
        "fetcher.py:3: imports tasker_dist.store.keys, not the store package's interface",
        "fetcher.py:4: NotExported is not in tasker_dist.store.__all__",
    ]
