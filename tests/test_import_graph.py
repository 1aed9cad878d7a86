"""The layering of the packages, read from their source: quill/ (the kernel and spec
language, exact semantics) knows nothing of the synthesizer (porcupine, z3) or of OpenFHE,
and only porcupine/backend/ talks to OpenFHE.

The walk reads every import statement with ast, at module level and inside functions (an
import inside a function still ties the modules together, it only runs later), and under
``if TYPE_CHECKING:`` too (a type is knowledge of the other package as well).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import ROOT

PACKAGES = ("quill", "porcupine")


@dataclass(frozen=True)
class Import:
    """One import statement's target, as seen from the module that holds it."""

    source: str  # the importing module, dotted
    target: str  # the imported module, dotted (a name imported from a module: that module)
    line: int
    top_level: bool  # False inside a function or class body, or under `if TYPE_CHECKING`


def module_name(path: Path, root: Path) -> str:
    """The dotted name of the module at ``path`` (a package's ``__init__`` is the package)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module of ``from ... import``, relative levels resolved."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


class _Walker(ast.NodeVisitor):
    """Collects imports, noting whether each one runs when the module is imported."""

    def __init__(self, module: str, is_package: bool, known: frozenset[str]) -> None:
        self.module, self.is_package, self.known = module, is_package, known
        self.depth = 0  # > 0 inside a def, a class or `if TYPE_CHECKING:`
        self.found: list[Import] = []

    def _add(self, target: str, line: int) -> None:
        self.found.append(Import(self.module, target, line, self.depth == 0))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node.lineno)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = _resolve(node, self.module, self.is_package)
        for alias in node.names:
            # `from pkg import sub` imports the submodule pkg.sub when there is one.
            sub = f"{base}.{alias.name}"
            self._add(sub if sub in self.known else base, node.lineno)

    def _nested(self, node: ast.AST) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _nested

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", None)
        if name == "TYPE_CHECKING":
            self._nested(node)
        else:
            self.generic_visit(node)


def imports_in(files: dict[str, Path], known: frozenset[str]) -> list[Import]:
    """Every import of every module in ``files`` (dotted name -> path)."""
    found: list[Import] = []
    for name, path in sorted(files.items()):
        walker = _Walker(name, path.name == "__init__.py", known)
        walker.visit(ast.parse(path.read_text(), filename=str(path)))
        found += walker.found
    return found


def project_imports(root: Path = ROOT) -> list[Import]:
    """Every import in quill/ and porcupine/."""
    files = {
        module_name(path, root): path
        for package in PACKAGES
        for path in sorted((root / package).rglob("*.py"))
    }
    return imports_in(files, frozenset(files))


def cycles(imports: list[Import]) -> list[list[str]]:
    """The import cycles among the modules that hold ``imports``: each strongly connected
    component of more than one module (or a module importing itself), sorted (Tarjan)."""
    graph: dict[str, set[str]] = {}
    for i in imports:
        graph.setdefault(i.source, set())
    for i in imports:
        if i.target in graph:
            graph[i.source].add(i.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph[v]:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def _top(name: str) -> str:
    return name.split(".")[0]


def _where(imports: list[Import]) -> list[str]:
    return [f"{i.source}:{i.line} imports {i.target}" for i in imports]


@pytest.fixture(scope="module")
def imports() -> list[Import]:
    return project_imports()


def test_the_walk_finds_the_packages_and_their_known_imports(imports: list[Import]) -> None:
    sources = {i.source for i in imports}
    assert {"quill.ops", "porcupine.synthesize", "porcupine.backend.runtime"} <= sources
    # porcupine.search.cegis imports z3 at module level; the synth command imports the backend
    # inside a function (only --emit python needs it): the walk sees both kinds.
    assert any(
        i.source == "porcupine.search.cegis" and i.target == "z3" and i.top_level for i in imports
    )
    assert any(
        i.source == "porcupine.cli.synth" and i.target == "porcupine.backend"
        for i in imports
        if not i.top_level
    )


def test_quill_imports_nothing_of_porcupine_z3_or_openfhe(imports: list[Import]) -> None:
    wrong = [
        i
        for i in imports
        if _top(i.source) == "quill" and _top(i.target) in {"porcupine", "z3", "openfhe"}
    ]
    assert not wrong, _where(wrong)


def test_only_the_backend_imports_openfhe(imports: list[Import]) -> None:
    wrong = [
        i
        for i in imports
        if _top(i.target) == "openfhe"
        and not (i.source == "porcupine.backend" or i.source.startswith("porcupine.backend."))
    ]
    assert not wrong, _where(wrong)


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycle(imports: list[Import], package: str) -> None:
    # Imports inside functions count: they tie the modules together all the same.
    assert cycles([i for i in imports if _top(i.source) == package]) == []


def test_the_pipeline_never_calls_the_facade(imports: list[Import]) -> None:
    """``porcupine.synthesize`` is a facade over the pipeline: nothing below it imports it."""
    below = [
        i
        for i in imports
        if i.target == "porcupine.synthesize"
        and not i.source.startswith("porcupine.cli")
        and i.source not in {"porcupine.app_plan"}  # compiles applications: above the pipeline
    ]
    assert not below, _where(below)


# --- the walker itself, on made-up packages -------------------------------------------------


def _walk(tmp_path: Path, sources: dict[str, str]) -> list[Import]:
    for rel, text in sources.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    files = {module_name(p, tmp_path): p for p in sorted(tmp_path.rglob("*.py"))}
    return imports_in(files, frozenset(files))


def test_the_walker_sees_every_kind_of_import(tmp_path: Path) -> None:
    found = _walk(
        tmp_path,
        {
            "pkg/__init__.py": "from . import a\nfrom .b import thing\n",
            "pkg/a.py": (
                "import os.path\nfrom typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    from pkg.b import T\n"
                "def f():\n    import openfhe\n"
                "class C:\n    from ..other import x\n"
            ),
            "pkg/b.py": "from pkg import a\nfrom pkg import helper_in_init\n",
            "pkg/sub/__init__.py": "from .. import b\nfrom . import c\n",
            "pkg/sub/c.py": "from ..a import f\n",
        },
    )
    got = {(i.source, i.target, i.top_level) for i in found}
    assert got == {
        ("pkg", "pkg.a", True),
        ("pkg", "pkg.b", True),
        ("pkg.a", "os.path", True),
        ("pkg.a", "typing", True),
        ("pkg.a", "pkg.b", False),
        ("pkg.a", "openfhe", False),
        ("pkg.a", "other", False),  # `..` from pkg.a is above pkg: outside the project
        ("pkg.b", "pkg.a", True),
        ("pkg.b", "pkg", True),
        ("pkg.sub", "pkg.b", True),
        ("pkg.sub", "pkg.sub.c", True),
        ("pkg.sub.c", "pkg.a", True),
    }
    assert cycles(found) == [["pkg", "pkg.a", "pkg.b"]]


def test_cycles_are_strongly_connected_components(tmp_path: Path) -> None:
    found = _walk(
        tmp_path,
        {
            "p/__init__.py": "",
            "p/x.py": "from p import y\n",
            "p/y.py": "def f():\n    from p import x\n",
            "p/z.py": "import p.z\nimport p.x\n",
        },
    )
    assert cycles(found) == [["p.x", "p.y"], ["p.z"]]
