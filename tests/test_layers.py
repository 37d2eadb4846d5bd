"""Layering: the library never calls the command line, and no two modules import each other."""

from __future__ import annotations

import ast
from pathlib import Path

import offnet

PACKAGE = Path(offnet.__file__).parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """offnet modules imported anywhere in ``path`` (module level or inside functions)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            candidates = [target] + [f"{target}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            candidates = [a.name for a in node.names]
        else:
            continue
        found.update(c for c in candidates if c.startswith("offnet") and _exists(c))
    found.discard(name)
    return found


def _exists(module: str) -> bool:
    rel = Path(*module.split("."))
    return (PACKAGE.parent / rel.with_suffix(".py")).is_file() or (PACKAGE.parent / rel / "__init__.py").is_file()


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in PACKAGE.rglob("*.py")}


def test_library_modules_do_not_import_the_cli():
    offenders = {m: sorted(i for i in deps if i.startswith("offnet.cli"))
                 for m, deps in _graph().items() if not m.startswith("offnet.cli")}
    assert {m: d for m, d in offenders.items() if d} == {}


def test_no_two_modules_import_each_other():
    graph = _graph()
    mutual = {tuple(sorted((a, b))) for a, deps in graph.items() for b in deps if a in graph.get(b, set())}
    # a package's __init__ re-exporting its own modules is not a cycle of logic
    assert sorted((a, b) for a, b in mutual if not b.startswith(a + ".")) == []
