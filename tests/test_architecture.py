"""The import graph of ``tinyedge/``, read with ``ast`` (nothing is imported): one-way layers, no cycles,
no private names across packages, no function-level imports but the optional heavy dependencies.

The layers, bottom to top (a module may import from its own package, its own layer and lower layers):

====  ==========================================================================
 0    ``tinyedge`` (the root ``__init__``: version), ``errors``, ``proc``, ``paths``, ``render``
 1    ``boards`` (board files, schema, the ``cores`` table)
 2    ``data``, ``model``
 3    ``oracle``, ``quantize``
 4    ``codegen``
 5    ``firmware``
 6    ``export`` (the model as a library for a user's firmware)
 7    ``link``
 8    ``runners``
 9    ``score``
 10   ``monitor``
 11   ``analysis``, ``pipeline``, ``matrix``, ``tune``
 12   ``commands``, ``cli``, ``__main__``
====  ==========================================================================

A "package" here is the first name below ``tinyedge`` (``tinyedge.model.lower.conv`` is in ``model``).
``tinyedge/firmware/platform/`` is not part of the graph: it is PlatformIO's platform (SCons scripts run
inside PlatformIO), not an importable package (no ``__init__.py``).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

PKG_DIR = Path(__file__).resolve().parent.parent / "tinyedge"

LAYERS: list[tuple[str, ...]] = [
    ("", "errors", "proc", "paths", "render"),
    ("boards",),
    ("data", "model"),
    ("oracle", "quantize"),
    ("codegen",),
    ("firmware",),
    ("export",),
    ("link",),
    ("runners",),
    ("score",),
    ("monitor",),
    ("analysis", "pipeline", "matrix", "tune"),
    ("commands", "cli", "__main__"),
]
LAYER_OF = {pkg: i for i, names in enumerate(LAYERS) for pkg in names}

#: Optional heavy dependencies, imported only by the function that needs them (``tinyedge --help`` and
#: everything that does not need them stay fast and work without them).
HEAVY = ("tensorflow", "tflite_micro", "matplotlib", "selenium", "absl", "SCons", "platformio", "rich.live",
         "labgrid")
#: POSIX-only standard modules: a module that must also import on Windows reaches them inside the function
#: that uses them, guarded by ``ImportError``.
PLATFORM_ONLY = ("termios", "tty", "fcntl")


@dataclass(frozen=True)
class Import:
    """One imported name: ``target`` is the tinyedge module it resolves to (None when external)."""

    module: str  # the importing module
    file: str  # path relative to the repository
    line: int
    target: str | None
    external: str | None  # dotted name of a non-tinyedge import
    name: str | None  # the name taken from the module (``from m import name``), None for ``import m``
    in_function: bool
    type_checking: bool

    def where(self) -> str:
        return f"{self.file}:{self.line}"


def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every module of an importable package under ``tinyedge/``."""
    out: dict[str, Path] = {}
    for path in sorted(PKG_DIR.rglob("*.py")):
        rel = path.relative_to(PKG_DIR.parent)
        parts = list(rel.with_suffix("").parts)
        # Every folder from tinyedge/ down must be a package.
        if not all((PKG_DIR.parent.joinpath(*parts[:i]) / "__init__.py").is_file() for i in range(1, len(parts))):
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = module_files()


def package_of(module: str) -> str:
    """``tinyedge.model.graph`` -> ``model``; the root package is ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _resolve(module: str, is_package: bool, level: int, name: str | None) -> str:
    """The absolute module a (possibly relative) ``from`` import names."""
    if level == 0:
        return name or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _deepest_module(dotted: str) -> str | None:
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        candidate = ".".join(parts[:i])
        if candidate in MODULES:
            return candidate
    return None


def imports_of(module: str) -> list[Import]:
    """Every import statement of ``module``, one entry per imported name."""
    path = MODULES[module]
    file = str(path.relative_to(PKG_DIR.parent))
    tree = ast.parse(path.read_text(), filename=file)
    is_package = path.name == "__init__.py"
    found: list[Import] = []

    def visit(node: ast.AST, in_function: bool, type_checking: bool) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = _deepest_module(alias.name) if alias.name.split(".")[0] == "tinyedge" else None
                found.append(Import(module, file, node.lineno, target, None if target else alias.name, None,
                                    in_function, type_checking))
            return
        if isinstance(node, ast.ImportFrom):
            source = _resolve(module, is_package, node.level, node.module)
            internal = node.level > 0 or source.split(".")[0] == "tinyedge"
            for alias in node.names:
                if not internal:
                    found.append(Import(module, file, node.lineno, None, source, alias.name, in_function,
                                        type_checking))
                    continue
                # ``from pkg import sub`` imports the submodule ``pkg.sub`` when there is one.
                sub = f"{source}.{alias.name}"
                target = sub if sub in MODULES else _deepest_module(source)
                name = None if sub in MODULES else alias.name
                found.append(Import(module, file, node.lineno, target, None, name, in_function, type_checking))
            return
        for child in ast.iter_child_nodes(node):
            visit(child,
                  in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)),
                  type_checking or (isinstance(node, ast.If) and _is_type_checking(node.test)
                                    and child in node.body))

    visit(tree, False, False)
    return found


ALL_IMPORTS = {m: imports_of(m) for m in MODULES}


def _internal() -> list[Import]:
    return [i for imps in ALL_IMPORTS.values() for i in imps if i.target is not None]


def test_the_graph_is_read():
    # A guard against a scanner that silently finds nothing.
    assert "tinyedge.cli" in MODULES and "tinyedge.boards" in MODULES and "tinyedge.model.graph" in MODULES
    assert any(i.target == "tinyedge.errors" for i in _internal())
    assert not any(m.startswith("tinyedge.firmware.platform") for m in MODULES)


def test_every_package_has_a_layer():
    missing = sorted({package_of(m) for m in MODULES} - set(LAYER_OF))
    assert not missing, f"packages with no layer in tests/test_architecture.py's LAYERS: {missing}"


def test_imports_go_down_the_layers():
    problems = []
    for i in _internal():
        src, dst = package_of(i.module), package_of(i.target)
        if src == dst or LAYER_OF[dst] <= LAYER_OF[src]:
            continue
        problems.append(f"{i.where()}: rule (a) upward import: {i.module} (layer {LAYER_OF[src]}, {src or 'tinyedge'}) "
                        f"imports {i.target} (layer {LAYER_OF[dst]}, {dst})")
    assert not problems, "imports from a higher layer:\n" + "\n".join(problems)


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module, or a module importing itself (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    sccs: list[list[str]] = []
    counter = 0

    def strongconnect(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph.get(v, ()):
                sccs.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)
    return sccs


def _cycle_path(graph: dict[str, set[str]], comp: list[str]) -> list[str]:
    """One concrete cycle inside a strongly connected component (for the message)."""
    members = set(comp)
    start = comp[0]
    path, seen = [start], {start}
    node = start
    while True:
        nxt = sorted(w for w in graph[node] if w in members)
        back = [w for w in nxt if w in path]
        if back:
            return path[path.index(back[0]):] + [back[0]]
        node = next(w for w in nxt if w not in seen)
        path.append(node)
        seen.add(node)


def test_cycle_finder_reports_the_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "e"}, "d": {"d"}, "e": set()}
    assert find_cycles(graph) == [["a", "b", "c"], ["d"]]
    assert _cycle_path(graph, ["a", "b", "c"]) == ["a", "b", "c", "a"]
    assert _cycle_path(graph, ["d"]) == ["d", "d"]


def test_no_import_cycles():
    # Imports under ``if TYPE_CHECKING:`` never run, so they cannot make a cycle.
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    lines: dict[tuple[str, str], str] = {}
    for i in _internal():
        if i.type_checking or i.target == i.module:
            continue
        graph[i.module].add(i.target)
        lines.setdefault((i.module, i.target), i.where())
    problems = []
    for comp in find_cycles(graph):
        cycle = _cycle_path(graph, comp)
        steps = [f"{a} -> {b} ({lines[(a, b)]})" for a, b in zip(cycle, cycle[1:])]
        problems.append("rule (b) import cycle: " + ";  ".join(steps))
    assert not problems, "import cycles:\n" + "\n".join(problems)


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def test_no_private_names_across_packages():
    problems = []
    for i in _internal():
        if package_of(i.module) == package_of(i.target):
            continue
        private_module = next((p for p in i.target.split(".") if _is_private(p)), None)
        if i.name is not None and _is_private(i.name):
            problems.append(f"{i.where()}: rule (c) {i.module} imports the private name {i.name} from {i.target}")
        elif private_module:
            problems.append(f"{i.where()}: rule (c) {i.module} imports the private module {i.target}")
    # ``from ..firmware import pio`` then ``pio._size(...)``: a private name reached through a module.
    for module, path in MODULES.items():
        aliases = {}
        for i in ALL_IMPORTS[module]:
            if i.target is not None and i.name is None and package_of(i.target) != package_of(module):
                aliases[i.target.rsplit(".", 1)[-1]] = i.target
        if not aliases:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                    and _is_private(node.attr)):
                problems.append(f"{path.relative_to(PKG_DIR.parent)}:{node.lineno}: rule (c) {module} uses the "
                                f"private name {node.attr} of {aliases[node.value.id]}")
    assert not problems, "private names used across packages (make them public):\n" + "\n".join(problems)


def _allowed_lazy(dotted: str) -> bool:
    return any(dotted == h or dotted.startswith(h + ".") for h in HEAVY + PLATFORM_ONLY)


def test_no_function_level_imports_but_heavy_dependencies():
    by_statement: dict[str, tuple[str, list[str]]] = {}
    for imps in ALL_IMPORTS.values():
        for i in imps:
            if not i.in_function:
                continue
            if i.target is None and i.external is not None:
                full = f"{i.external}.{i.name}" if i.name and i.name != "*" else i.external
                if _allowed_lazy(i.external) or _allowed_lazy(full):
                    continue
                source, name = i.external, i.name
            else:
                source, name = i.target, i.name
            names = by_statement.setdefault(i.where(), (i.module, []))[1]
            names.append(f"{source}.{name}" if name else source)
    problems = [f"{where}: rule (d) function-level import in {module}: {', '.join(names)} "
                "(move it to the module top; only optional heavy dependencies are imported lazily)"
                for where, (module, names) in by_statement.items()]
    assert not problems, f"{len(problems)} function-level imports:\n" + "\n".join(problems)
