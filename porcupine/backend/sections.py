"""The source sections an emitted module is assembled from, and their one import block.

Every emitted module is :mod:`porcupine.backend.runtime` plus sections of other real,
checked modules: :mod:`~porcupine.backend.context_facts` (what a context was built with,
read for the runtime's checks), :mod:`~porcupine.backend.packed_io` (kernels under a
client packing), :mod:`~porcupine.backend.tiles` (inputs of any size),
:mod:`~porcupine.backend.instances` (many instances per ciphertext),
:mod:`~porcupine.backend.workers` (threads, worker processes, Dask),
:mod:`~porcupine.backend.dispatch` (a request's tasks sent to them),
:mod:`~porcupine.backend.parties` (client and server) and :mod:`~porcupine.backend.serve`
(a worker's side, the server program).
Each keeps its imports (from the runtime, for mypy) above a marker line and its code below
it; the code is copied, and the imports it needs from outside Porcupine join the runtime's
in one block, sorted as ruff's isort sorts them, so the module stays ruff-clean.
"""

from __future__ import annotations

import ast
import functools
import importlib.resources
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

_THIRD_PARTY = ("numpy", "openfhe")


@dataclass(frozen=True)
class Section:
    """A module's code below its marker, and the imports it needs (not Porcupine's)."""

    imports: tuple[str, ...]  # one import statement each, as written
    code: str


@functools.cache
def section(filename: str, marker: str) -> Section:
    """The section of ``porcupine/backend/<filename>`` below the line starting ``marker``."""
    source = importlib.resources.files(__package__).joinpath(filename).read_text()
    lines = source.splitlines()
    (begin,) = (i for i, line in enumerate(lines) if line.startswith(marker))
    imports = tuple(
        ast.get_source_segment(source, node) or ""
        for node in ast.parse(source).body
        if node.end_lineno is not None and node.end_lineno <= begin
        if isinstance(node, ast.Import | ast.ImportFrom) and not _ours(node)
    )
    return Section(imports, "\n".join(lines[begin + 1 :]).strip())


def _ours(node: ast.Import | ast.ImportFrom) -> bool:
    if isinstance(node, ast.ImportFrom):
        return (node.module or "").split(".")[0] == "porcupine"
    return any(alias.name.split(".")[0] == "porcupine" for alias in node.names)


def import_block(statements: Iterable[str]) -> str:
    """One import block for ``statements``: ``from __future__`` first, then the standard
    library, then numpy and openfhe; plain imports before ``from`` imports in each group,
    modules and names sorted, ``from`` imports of one module merged."""
    plain: set[tuple[str, str | None]] = set()
    froms: dict[str, set[str]] = defaultdict(set)
    for statement in statements:
        node = ast.parse(statement).body[0]
        if isinstance(node, ast.Import):
            plain.update((a.name, a.asname) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            froms[node.module].update(
                a.name if a.asname is None else f"{a.name} as {a.asname}" for a in node.names
            )
    groups: list[list[str]] = [[], [], []]
    for name, alias in sorted(plain):
        text = f"import {name}" + (f" as {alias}" if alias else "")
        groups[_group(name)].append(text)
    for module in sorted(froms):
        names = ", ".join(sorted(froms[module], key=_by_type))
        groups[_group(module)].append(f"from {module} import {names}")
    return "\n\n".join("\n".join(g) for g in groups if g)


def _by_type(name: str) -> tuple[int, str]:
    """isort's order-by-type: CONSTANTS, then Classes, then the rest."""
    kind = 0 if name.isupper() and len(name) > 1 else 1 if name[:1].isupper() else 2
    return kind, name


def _group(module: str) -> int:
    top = module.split(".")[0]
    return 0 if top == "__future__" else 2 if top in _THIRD_PARTY else 1


# The runtime's markers around the generated parts (see porcupine/backend/runtime.py), and
# the markers above each section's code.
CONSTANTS_BEGIN = "# --- kernel constants"
CONSTANTS_END = "# --- end of kernel constants ---"
CODE_BEGIN = "# --- kernel code"
CONTEXT_FACTS_BEGIN = "# --- context facts"
TILES_BEGIN = "# --- tiles"
INSTANCES_BEGIN = "# --- instances"
WORKERS_BEGIN = "# --- workers"
DISPATCH_BEGIN = "# --- dispatch"
WIRE_BEGIN = "# --- wire"
PARTIES_BEGIN = "# --- two parties"
SERVE_BEGIN = "# --- serve"


@dataclass(frozen=True)
class RuntimeText:
    """The runtime's source around the generated parts, marker lines included."""

    imports: tuple[str, ...]  # its import statements
    head: str  # after the imports, up to the constants marker
    middle: str  # from the end-of-constants marker to the kernel-code marker

    @staticmethod
    @functools.cache
    def load() -> RuntimeText:
        """Split :mod:`porcupine.backend.runtime`'s source at its markers."""
        source = importlib.resources.files(__package__).joinpath("runtime.py").read_text()
        body = ast.parse(source).body
        assert isinstance(body[0], ast.Expr), "the runtime starts with its docstring"
        every = [node for node in body if isinstance(node, ast.Import | ast.ImportFrom)]
        imports = [node for node in every if not _ours(node)]  # the sections are copied in
        lines = source.splitlines()

        def marker(prefix: str) -> int:
            (index,) = (i for i, line in enumerate(lines) if line.startswith(prefix))
            return index

        begin, end, code = marker(CONSTANTS_BEGIN), marker(CONSTANTS_END), marker(CODE_BEGIN)
        last = every[-1].end_lineno
        assert last is not None
        return RuntimeText(
            tuple(ast.get_source_segment(source, node) or "" for node in imports),
            "\n".join(lines[last : begin + 1]).strip("\n"),
            "\n".join(lines[end : code + 1]),
        )


def application_sections() -> tuple[Section, ...]:
    """The sections every emitted module has after the runtime: the context facts the
    runtime's checks read, data of any size, many instances per ciphertext, worker
    processes and clusters, the bytes the parties exchange, the two parties, and the
    server's worker side and program (in that order: each uses the ones before it)."""
    return (
        section("context_facts.py", CONTEXT_FACTS_BEGIN),
        section("tiles.py", TILES_BEGIN),
        section("instances.py", INSTANCES_BEGIN),
        section("workers.py", WORKERS_BEGIN),
        section("dispatch.py", DISPATCH_BEGIN),
        section("wire.py", WIRE_BEGIN),
        section("parties.py", PARTIES_BEGIN),
        section("serve.py", SERVE_BEGIN),
    )


def assemble(docstring: str, constants: str, middle: str, code: str) -> str:
    """An emitted module's text: ``docstring``, one import block, the runtime's head, the
    kernel ``constants``, ``middle`` (the runtime's, or a packed kernel's, ending with the
    kernel-code marker line), the application sections before that marker, and ``code``."""
    runtime = RuntimeText.load()
    sections = application_sections()
    imports = import_block([*runtime.imports, *(i for s in sections for i in s.imports)])
    *before, marker_line = middle.splitlines()
    parts = ["\n".join(before).rstrip(), *(s.code for s in sections), marker_line, code, _MAIN]
    head = f"{docstring}\n\n{imports}\n\n{runtime.head}\n{constants}\n"
    return head + "\n\n\n".join(parts) + "\n"


# The module is also the server as a program (serve.main): python KERNEL.py serve ...
_MAIN = 'if __name__ == "__main__":\n    sys.exit(main())'
