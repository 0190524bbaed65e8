"""The package's architecture, checked from its source (DESIGN.md section 3).

Read with `ast`, never imported: these checks hold whatever is installed and cannot be
fooled by modules already in sys.modules.

- Only the pytest layer (`pytest_hwperf/plugin/`) imports pytest; every other package
  is plain Python that the CLI and unit tests use without pytest.
- No import cycle between modules, counting the imports that run (at module level or
  inside functions) and not those under `if TYPE_CHECKING:`.
- No cycle between packages (the first component under `pytest_hwperf`: plugin,
  measure, judge, ...; a top-level module such as `warnings` is a node of its own). The
  facade `pytest_hwperf/__init__.py` stays out of this graph: it re-exports from all
  layers, lazily.
- No module over MAX_LINES lines.

Names resolved through `importlib.import_module` with a string (the lazy facades'
tables) are not import statements and are not counted.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "pytest_hwperf"
SOURCE = ROOT / PACKAGE
PYTEST_LAYER = f"{PACKAGE}.plugin"
FACADE = PACKAGE  # pytest_hwperf/__init__.py
MAX_LINES = 600


@dataclass(frozen=True)
class Import:
    """One import statement of a module: the names it brings in, resolved."""

    targets: tuple[str, ...]  # absolute module names, e.g. ("pytest_hwperf.judge.stats",)
    line: int
    runtime: bool  # False under `if TYPE_CHECKING:`


# --- reading the source ------------------------------------------------------------


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    """Every module of the package, by dotted name."""
    return {module_name(p): p for p in sorted(SOURCE.rglob("*.py"))}


def is_package(name: str) -> bool:
    return modules()[name].name == "__init__.py"


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST, runtime: bool) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement under node, with whether it runs (not TYPE_CHECKING)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child, runtime
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for statement in child.body:
                yield from _walk_statement(statement, runtime=False)
            for statement in child.orelse:
                yield from _walk_statement(statement, runtime)
        else:
            yield from _walk(child, runtime)


def _walk_statement(
    statement: ast.stmt, runtime: bool
) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    if isinstance(statement, ast.Import | ast.ImportFrom):
        yield statement, runtime
    else:
        yield from _walk(statement, runtime)


def _base_of(node: ast.ImportFrom, importer: str) -> str:
    """The absolute module an ImportFrom names (resolving `from . import x`)."""
    if node.level == 0:
        return node.module or ""
    package = importer if is_package(importer) else importer.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


@cache
def imports_of(name: str) -> tuple[Import, ...]:
    tree = ast.parse(modules()[name].read_text(encoding="utf-8"), filename=str(modules()[name]))
    found = []
    for node, runtime in _walk(tree, runtime=True):
        if isinstance(node, ast.Import):
            targets = tuple(alias.name for alias in node.names)
        else:
            base = _base_of(node, name)
            # `from pytest_hwperf.x import y` imports module x.y where that is a module,
            # else takes the name y from x
            targets = tuple(
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules() else base
                for alias in node.names
            )
        found.append(Import(targets=targets, line=node.lineno, runtime=runtime))
    return tuple(found)


def _internal(target: str) -> str | None:
    """The package's module that an import target names (the nearest existing one)."""
    while target and target not in modules():
        target = target.rpartition(".")[0]
    return target if target.startswith(PACKAGE) else None


@cache
def runtime_graph() -> dict[str, frozenset[str]]:
    """Module -> the package's modules it imports when it runs."""
    graph = {}
    for name in modules():
        targets = set()
        for imp in imports_of(name):
            if imp.runtime:
                targets.update(t for t in map(_internal, imp.targets) if t is not None)
        targets.discard(name)
        graph[name] = frozenset(targets)
    return graph


def package_of(name: str) -> str:
    """'plugin' for pytest_hwperf.plugin.hooks, 'warnings' for pytest_hwperf.warnings."""
    return name.split(".")[1]


# --- graphs --------------------------------------------------------------------------


def strongly_connected(graph: dict[str, frozenset[str]]) -> list[list[str]]:
    """The graph's cycles: its strongly connected components of more than one node
    (Tarjan, iterative), each sorted, in sorted order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in graph:
                    continue
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return sorted(found)


def shortest_cycle(graph: dict[str, frozenset[str]], component: Iterable[str]) -> list[str]:
    """One shortest cycle through the component's first node, e.g. [a, b, a]."""
    members = set(component)
    start = min(members)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node] & members):
                if child == start:
                    return [*paths[node], start]
                if child not in paths:
                    paths[child] = [*paths[node], child]
                    following.append(child)
        frontier = following
    raise AssertionError(f"no cycle through {start}")  # pragma: no cover


def describe_cycles(graph: dict[str, frozenset[str]]) -> list[str]:
    return [
        f"{' -> '.join(shortest_cycle(graph, c))} (all of: {', '.join(c)})"
        for c in strongly_connected(graph)
    ]


# --- the checks ----------------------------------------------------------------------


def test_the_source_is_found() -> None:
    assert PYTEST_LAYER in modules()
    assert len(modules()) > 20, sorted(modules())


def test_only_the_pytest_layer_imports_pytest() -> None:
    offenders = [
        f"{name}:{imp.line} imports {target}"
        for name in modules()
        if name != PYTEST_LAYER and not name.startswith(f"{PYTEST_LAYER}.")
        for imp in imports_of(name)
        for target in imp.targets
        if target.split(".")[0] in {"pytest", "_pytest"}
    ]
    assert not offenders, "pytest imported outside pytest_hwperf/plugin/:\n" + "\n".join(offenders)


def test_no_import_cycle_between_modules() -> None:
    cycles = describe_cycles(runtime_graph())
    assert not cycles, "import cycles between modules:\n" + "\n".join(cycles)


def package_graph() -> dict[str, frozenset[str]]:
    graph: dict[str, set[str]] = {}
    for name, targets in runtime_graph().items():
        if name == FACADE:
            continue
        edges = graph.setdefault(package_of(name), set())
        edges.update(package_of(t) for t in targets if t != FACADE)
    return {package: frozenset(edges - {package}) for package, edges in graph.items()}


def test_no_import_cycle_between_packages() -> None:
    graph = package_graph()
    offenders = []
    for cycle in strongly_connected(graph):
        # name the module imports behind each edge of the cycle
        members = set(cycle)
        edges = sorted(
            f"  {name} imports {target}"
            for name, targets in runtime_graph().items()
            if name != FACADE and package_of(name) in members
            for target in targets
            if target != FACADE
            and package_of(target) in members
            and package_of(target) != package_of(name)
        )
        offenders.append(f"{' -> '.join(shortest_cycle(graph, cycle))}:")
        offenders.extend(edges)
    assert not offenders, "import cycles between packages:\n" + "\n".join(offenders)


def test_no_module_is_too_long() -> None:
    lengths = {
        path.relative_to(ROOT).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
        for path in modules().values()
    }
    offenders = [f"{path}: {n} lines" for path, n in sorted(lengths.items()) if n > MAX_LINES]
    assert not offenders, f"modules over {MAX_LINES} lines:\n" + "\n".join(offenders)


# --- the checker itself ----------------------------------------------------------------


def test_cycles_are_found_and_named() -> None:
    graph = {
        "a": frozenset({"b"}),
        "b": frozenset({"c"}),
        "c": frozenset({"a", "d"}),
        "d": frozenset(),
        "e": frozenset({"f"}),
        "f": frozenset({"e"}),
    }
    assert strongly_connected(graph) == [["a", "b", "c"], ["e", "f"]]
    assert shortest_cycle(graph, ["a", "b", "c"]) == ["a", "b", "c", "a"]
    assert strongly_connected({"a": frozenset({"b"}), "b": frozenset()}) == []


def test_type_checking_imports_are_not_runtime_imports() -> None:
    tree = ast.parse(
        "import a\n"
        "if TYPE_CHECKING:\n    import b\nelse:\n    import c\n"
        "if typing.TYPE_CHECKING:\n    import d\n"
        "def f():\n    import e\n"
    )
    found = {node.names[0].name: runtime for node, runtime in _walk(tree, runtime=True)}
    assert found == {"a": True, "b": False, "c": True, "d": False, "e": True}
