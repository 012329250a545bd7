"""The benchmarks (tests/bench, `make bench`) are not run by `make test`, but they must keep up
with the engine: every `mapscribe` name they import, in their code or in the scripts they run in
a child process, still exists."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import textwrap
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest

BENCH = Path(__file__).resolve().parent / "bench"


def _imports(tree: ast.AST) -> Iterator[Tuple[int, str, List[str]]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mapscribe"):
            yield node.lineno, node.module, [alias.name for alias in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("mapscribe"):
                    yield node.lineno, alias.name, []
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and (
                "import mapscribe" in node.value or "from mapscribe" in node.value):
            # A script run with `python -c`: its imports count too (prose is skipped).
            try:
                script = ast.parse(textwrap.dedent(node.value))
            except SyntaxError:
                continue
            for line, module, names in _imports(script):
                yield node.lineno + line - 1, module, names


@pytest.mark.parametrize("path", sorted(BENCH.glob("*.py")), ids=lambda path: path.name)
def test_benchmarks_import_only_what_the_engine_has(path):
    missing = []
    for line, module, names in _imports(ast.parse(path.read_text(encoding="utf-8"))):
        try:
            imported = importlib.import_module(module)
        except ImportError as error:
            missing.append(f"{path.name}:{line}: {module} ({error})")
            continue
        missing += [f"{path.name}:{line}: {module}.{name}" for name in names
                    if not hasattr(imported, name)
                    and importlib.util.find_spec(f"{module}.{name}") is None]
    assert missing == [], "the benchmarks import what the engine no longer has:\n" + "\n".join(
        missing)
