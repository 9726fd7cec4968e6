"""The layers hold: imports read from the source with ``ast`` (function-level imports included, imports under
``if TYPE_CHECKING:`` left out: they never run).

``flows -> tasks -> (zoo, catalog)``; ``zoo`` never imports Prefect, DuckDB, MLflow or the layers above it;
only the demo zoo itself imports ``zoo.demozoo``; ``catalog`` never imports torch or ``zoo``; ``flows``
never opens DuckDB or the catalog itself; and no two modules import each other, however indirectly.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("zoo", "catalog", "tasks", "flows")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def source_files() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in sorted((REPO_ROOT / package).rglob("*.py"))}


MODULES = source_files()


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node except what sits under ``if TYPE_CHECKING:``."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (n for child in node.orelse for n in [child, *_runtime_nodes(child)])
            continue
        yield node
        yield from _runtime_nodes(node)


def imported(module: str) -> set[str]:
    """Absolute names ``module`` imports at run time: ``a.b.c`` for ``from a.b import c`` when ``c`` is a module,
    ``a.b`` when it is a name defined in ``a.b``."""
    path = MODULES[module]
    names: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module if path.name == "__init__.py" else module.rpartition(".")[0]
                for _ in range(node.level - 1):
                    package = package.rpartition(".")[0]
                base = f"{package}.{base}" if base else package
            submodules = {f"{base}.{alias.name}" for alias in node.names} & MODULES.keys()
            names.update(submodules)
            if len(submodules) < len(node.names):  # some names are the package's own, not its modules
                names.add(base)
    return names


IMPORTS = {module: imported(module) for module in MODULES}


def offenders(where: str, forbidden: tuple[str, ...], unless: str | None = None) -> list[str]:
    return sorted(f"{module} imports {name}" for module, names in IMPORTS.items()
                  if (module == where or module.startswith(f"{where}."))
                  and not (unless and (module == unless or module.startswith(f"{unless}.")))
                  for name in names if any(name == f or name.startswith(f"{f}.") for f in forbidden))


@pytest.mark.parametrize(("layer", "forbidden", "unless"), [
    ("zoo", ("prefect", "duckdb", "mlflow", "catalog", "tasks", "flows"), None),
    ("zoo", ("zoo.demozoo",), "zoo.demozoo"),
    ("catalog", ("torch", "zoo", "tasks", "flows", "prefect", "mlflow"), None),
    ("tasks", ("flows",), None),
    ("flows", ("duckdb", "catalog"), "flows.cli"),  # the CLI sits on top of every layer (`zoo sql` reads the catalog)
])
def test_a_layer_imports_only_what_lies_below_it(layer, forbidden, unless):
    assert offenders(layer, forbidden, unless) == []


def test_the_demo_zoo_is_imported_only_by_the_demo_commands():
    demo_commands = {"flows.cli.demo", "flows.cli.demo_zoo", "flows.cli.evaluate"}
    users = sorted(m for m, names in IMPORTS.items() if not m.startswith("zoo.demozoo") and m not in demo_commands
                   and any(n == "zoo.demozoo" or n.startswith("zoo.demozoo.") for n in names))
    assert users == []


def test_no_modules_import_each_other():
    graph = {m: {n for n in names if n in MODULES and n != m} for m, names in IMPORTS.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in graph:
        if module not in index:
            visit(module)
    assert cycles == []


def test_the_checker_sees_function_level_imports_and_skips_type_checking_ones():
    """The rules above would pass vacuously if the reader missed imports: check it on known modules."""
    assert "zoo.merge" in IMPORTS["zoo.candidates.kinds.merge"]
    assert "zoo.candidates.spec" not in IMPORTS["zoo.candidates.kinds.merge"]  # under TYPE_CHECKING
    assert "transformers" in IMPORTS["zoo.candidates.context"]  # imported inside a method
