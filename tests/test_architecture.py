"""The shape of the code: the import graph of src/opskit (and of the plugins) read with
``ast``, every import counted (also those inside functions), except those under
``if TYPE_CHECKING:``, which never run.

- No import cycle among the core's modules: each module can be understood (and imported)
  after the modules it uses, never together with them.
- No module imports a private name (``_name``; dunders such as ``__version__`` aside) of
  another module: what two modules share is public, in a module of its own.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterable, Iterator
from pathlib import Path

import attrs
import pytest

REPO = Path(__file__).resolve().parent.parent
ROOTS = (REPO / "src", *sorted((REPO / "plugins").glob("*/src")))


@attrs.frozen
class Import:
    source: str  # the importing module
    target: str  # the imported module
    name: str | None  # the name taken from it (None: the module itself)
    line: int
    runs: bool = True  # False: under `if TYPE_CHECKING:`, for type checkers only

    def where(self) -> str:
        return f"{self.source}:{self.line}"


def modules(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every package under *root*."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def type_checking_only(tree: ast.Module) -> set[int]:
    """The ids of every node under an ``if TYPE_CHECKING:`` block."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(sub) for sub in ast.walk(node))
    return skipped


def lazy_names(path: Path) -> dict[str, str]:
    """A package's lazily imported names (``_LAZY = {"Ops": "opskit.api"}``): importing
    such a name from the package imports that module."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "_LAZY" for t in node.targets
        ):
            return dict(ast.literal_eval(node.value))
    return {}


def imports(known: dict[str, Path]) -> Iterator[Import]:
    """Every import between the *known* modules (module-level, in a function, or for type
    checkers only), and every private name read off an imported module (``module._name``)."""
    lazy = {m: lazy_names(p) for m, p in known.items() if p.name == "__init__.py"}
    for module, path in known.items():
        tree = ast.parse(path.read_text(), str(path))
        skipped = type_checking_only(tree)
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        aliases: dict[str, str] = {}  # local name -> module, for `module._name`
        for node in ast.walk(tree):
            runs = id(node) not in skipped
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in known:
                        yield Import(module, alias.name, None, node.lineno, runs)
                        aliases[alias.asname or alias.name] = alias.name
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join([*parts, *([node.module] if node.module else [])])
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    if full in known:
                        yield Import(module, full, None, node.lineno, runs)
                        aliases[alias.asname or alias.name] = full
                    elif base in known:
                        target = lazy.get(base, {}).get(alias.name, base)
                        yield Import(module, target, alias.name, node.lineno, runs)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and private(node.attr)
                and (target := aliases.get(ast.unparse(node.value))) is not None
            ):
                yield Import(module, target, node.attr, node.lineno, id(node) not in skipped)


def cycles(edges: dict[str, dict[str, Import]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in edges.get(node, {}):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def a_loop(edges: dict[str, dict[str, Import]], members: list[str]) -> list[Import]:
    """One loop through the first of *members*, as the imports that make it."""
    inside = set(members)
    start = members[0]
    paths: dict[str, list[Import]] = {start: []}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for other, edge in sorted(edges.get(node, {}).items()):
            if other == start:
                return [*paths[node], edge]
            if other in inside and other not in paths:
                paths[other] = [*paths[node], edge]
                queue.append(other)
    raise AssertionError(f"no loop through {start}")


def graph(known: dict[str, Path], found_imports: Iterable[Import]) -> dict[str, dict[str, Import]]:
    """module -> imported module -> the first import of it; importing a module of a
    package imports the package too."""
    edges: dict[str, dict[str, Import]] = {m: {} for m in known}
    for found in found_imports:
        if not found.runs:
            continue
        parts = found.target.split(".")
        for end in range(len(parts), 0, -1):
            target = ".".join(parts[:end])
            if target in known and target != found.source:
                edges[found.source].setdefault(target, found)
    return edges


@functools.cache
def all_modules() -> dict[str, Path]:
    known: dict[str, Path] = {}
    for root in ROOTS:
        known.update(modules(root))
    return known


@functools.cache
def all_imports() -> tuple[Import, ...]:
    return tuple(imports(all_modules()))


@pytest.mark.parametrize("root", ROOTS, ids=lambda root: str(root.relative_to(REPO)))
def test_no_import_cycle(root: Path) -> None:
    edges = graph(all_modules(), all_imports())
    mine = set(modules(root))
    loops = [c for c in cycles(edges) if mine & set(c)]
    described = [
        "; ".join(f"{e.where()} imports {e.target}" for e in a_loop(edges, loop)) for loop in loops
    ]
    assert not loops, "import cycles (a function-local import counts):\n" + "\n".join(described)


@pytest.mark.parametrize("root", ROOTS, ids=lambda root: str(root.relative_to(REPO)))
def test_no_module_imports_a_private_name_of_another(root: Path) -> None:
    mine = set(modules(root))
    found = [
        f"{i.where()}: {i.target}.{i.name}"
        for i in all_imports()
        if i.source in mine
        and i.target != i.source
        and (
            (i.name is not None and private(i.name))
            or any(private(part) for part in i.target.split("."))
        )
    ]
    assert not found, "private names imported from another module:\n" + "\n".join(found)


def test_the_checks_see_function_local_imports_and_skip_type_checking_ones(
    tmp_path: Path,
) -> None:
    """The graph code itself, on a package made for it: what it must find and what not."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text('_LAZY = {"Thing": "pkg.b"}\n__version__ = "1"\n')
    (package / "a.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "from pkg import __version__\n"
        "if TYPE_CHECKING:\n"
        "    from pkg.c import C\n"
        "def later():\n"
        "    from . import b\n"
        "    return b._hidden\n"
    )
    (package / "d.py").write_text("if TYPE_CHECKING:\n    from pkg.a import _Typed\n")
    (package / "b.py").write_text("import pkg.c as c\n")
    (package / "c.py").write_text("def f():\n    from pkg import Thing\n    from pkg.a import _x\n")
    known = modules(tmp_path)
    edges = graph(known, imports(known))
    assert set(edges["pkg.a"]) == {"pkg", "pkg.b"}  # the TYPE_CHECKING import is not one
    assert set(edges["pkg.c"]) == {"pkg", "pkg.a", "pkg.b"}  # Thing is pkg.b's
    assert cycles(edges) == [["pkg.a", "pkg.b", "pkg.c"]]
    loop = a_loop(edges, ["pkg.a", "pkg.b", "pkg.c"])
    assert [(e.source, e.target) for e in loop] == [
        ("pkg.a", "pkg.b"),
        ("pkg.b", "pkg.c"),
        ("pkg.c", "pkg.a"),
    ]
    privates = {(i.source, i.name) for i in imports(known) if i.name and private(i.name)}
    # __version__ is no secret; a private name imported for type checkers only is one
    assert privates == {("pkg.a", "_hidden"), ("pkg.c", "_x"), ("pkg.d", "_Typed")}
    assert "pkg.a" not in edges["pkg.d"]


def test_dir_of_the_package_lists_its_lazy_names() -> None:
    import opskit

    names = dir(opskit)
    for name in ("Ops", "OpskitError", "hookimpl", "__version__"):
        assert name in names, name
    assert "importlib" not in names  # what the lazy loading uses is not a name of the package


def test_the_plugin_contract_takes_its_types_from_the_contracts_only() -> None:
    """hookspecs.py imports its types from opskit.contracts (besides the host and the
    server's settings, which plugins are handed as they are), and the contracts import
    nothing of the engines that work on them."""
    found = {(i.source, i.target) for i in all_imports()}
    specs = {target for source, target in found if source == "opskit.hookspecs"}
    assert specs <= {"opskit", "opskit.contracts", "opskit.host", "opskit.settings"}, specs
    contracts = {target for source, target in found if source == "opskit.contracts"}
    assert contracts <= {"opskit", "opskit.errors", "opskit.events", "opskit.host"} | {
        "opskit.containers"  # type-only: the containers a context carries
    }, contracts
    runtime = {i.target for i in all_imports() if i.source == "opskit.contracts" and i.runs}
    assert runtime <= {"opskit.errors", "opskit.events"}, runtime


# The layers of docs/architecture.md, from the bottom up: a module imports only from its
# own layer and the layers below it (function-local imports count).
LAYERS = (
    ("shared types", "contracts events errors output sqldump yamlreader processes"),
    ("plugin API", "hookspecs plugins"),
    ("jobs", "jobs"),
    ("reading", "descriptor settings"),
    ("the host", "host execstream"),
    ("identity", "compose containers"),
    ("runtime", "runtime stacks gate health databases disk"),
    ("records", "audit notify runs"),
    (
        "engines",
        "backups archive components dumps retention locks sync transform promote rebuild "
        "drill offsite restic restic_key store escrow watch timers doctor discover rootconfig recovery namespaced",
    ),
    ("operations", "operations schedule_edit operation_requests"),
    ("composition root", "api"),
    ("front ends", "cli defaults web runner fleet __main__ testing"),
)


def layer_of(module: str) -> int | None:
    head = module.removeprefix("opskit.").split(".")[0]
    return next((i for i, (_n, names) in enumerate(LAYERS) if head in names.split()), None)


def test_every_module_imports_only_its_own_layer_and_the_layers_below() -> None:
    known = modules(REPO / "src")
    edges = graph(known, (i for i in all_imports() if i.source in known))
    unplaced = sorted(m for m in known if m != "opskit" and layer_of(m) is None)
    assert not unplaced, f"modules in no layer of docs/architecture.md: {unplaced}"
    upward = [
        f"{found.where()} ({LAYERS[layer_of(source)][0]}) imports {target}"  # type: ignore[index]
        f" ({LAYERS[layer_of(target)][0]})"  # type: ignore[index]
        for source, targets in sorted(edges.items())
        for target, found in sorted(targets.items())
        if source != "opskit" and target != "opskit" and layer_of(target) > layer_of(source)  # type: ignore[operator]
    ]
    assert not upward, "imports of a higher layer:\n" + "\n".join(upward)
