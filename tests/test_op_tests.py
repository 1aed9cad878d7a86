"""Op classification lives in quill/ops.py's table: code elsewhere asks the table (a flag
or predicate of the row, :func:`quill.ops.opcode_for`) instead of testing which opcode,
family or mnemonic it holds. This walk reads quill/ and porcupine/ with ast and finds
every such test, so a new ``ins.opcode is Opcode.ROT`` (or ``family == "mul"``, or a
dict keyed by opcode) fails here.

A site counts when it
* compares (``is``, ``==``, ``in``, ...) against ``Opcode.X`` or ``Family.X`` (also
  inside a tuple, list or set being compared, and under any import alias),
* compares against a string that is a mnemonic, opcode value, family value, or cost or
  noise key of the table,
* counts occurrences of one (``families.count(Family.ROT)``),
* keys a dict literal by ``Opcode.X`` or ``Family.X`` (a second op table), or
* matches one in a ``case``.

The parser's grammar (quill/parser.py) is exempt: it reads mnemonics, which is its job.
At most :data:`ALLOWED` sites remain, each carrying an ``# op test:`` comment on its line
or the line above that says why it cannot ask the table.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import ROOT
from hypothesis import given
from hypothesis import strategies as st

from quill.algebra import ModTRing
from quill.ops import OPS, Family, Kind, Opcode, apply_scalar, opcode_for
from quill.slots import T

PACKAGES = ("quill", "porcupine")
EXEMPT = ("quill/ops.py", "quill/parser.py")
ALLOWED = 3
MARK = "# op test:"

OP_STRINGS = frozenset(
    {info.mnemonic for info in OPS.values()}
    | {op.value for op in Opcode}
    | {f.value for f in Family}
    | {info.cost for info in OPS.values()}
    | {info.noise for info in OPS.values()}
)


@dataclass(frozen=True)
class Site:
    """One place that classifies an op by itself."""

    path: str
    line: int
    text: str


def _aliases(tree: ast.Module) -> frozenset[str]:
    """The names a module uses for ``Opcode`` and ``Family`` (``as`` aliases included)."""
    names = {"Opcode", "Family"}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "quill.ops":
            names |= {a.asname or a.name for a in node.names if a.name in ("Opcode", "Family")}
    return frozenset(names)


def _is_member(node: ast.AST, aliases: frozenset[str]) -> bool:
    """Whether ``node`` is ``Opcode.X`` or ``Family.X`` (or ``quill.ops.Opcode.X``)."""
    if not isinstance(node, ast.Attribute):
        return False
    owner = node.value
    if isinstance(owner, ast.Name):
        return owner.id in aliases
    return isinstance(owner, ast.Attribute) and owner.attr in ("Opcode", "Family")


def _names_op(node: ast.AST, aliases: frozenset[str]) -> bool:
    """Whether ``node`` (or an element of a tuple, list or set literal) names an op."""
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return any(_names_op(e, aliases) for e in node.elts)
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value in OP_STRINGS
    return _is_member(node, aliases)


def _classifies(node: ast.AST, aliases: frozenset[str]) -> bool:
    if isinstance(node, ast.Compare):
        return any(_names_op(n, aliases) for n in [node.left, *node.comparators])
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return node.func.attr == "count" and any(_is_member(a, aliases) for a in node.args)
    if isinstance(node, ast.Dict):
        return any(k is not None and _names_op(k, aliases) and not isinstance(k, ast.Constant)
                   for k in node.keys)  # fmt: skip
    if isinstance(node, ast.MatchValue):
        return _names_op(node.value, aliases)
    return False


def sites_in(source: str, path: str) -> list[Site]:
    """The op-classifying sites of one module's source."""
    tree = ast.parse(source, filename=path)
    aliases = _aliases(tree)
    lines = source.splitlines()
    return [
        Site(path, node.lineno, lines[node.lineno - 1].strip())
        for node in ast.walk(tree)
        if _classifies(node, aliases)
    ]


def project_sites(root: Path = ROOT) -> list[Site]:
    """Every op-classifying site in quill/ and porcupine/ outside the exempt modules."""
    found: list[Site] = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            if rel not in EXEMPT:
                found += sites_in(path.read_text(), rel)
    return sorted(set(found), key=lambda s: (s.path, s.line))


def _commented(site: Site, root: Path = ROOT) -> bool:
    lines = (root / site.path).read_text().splitlines()
    return any(MARK in lines[i] for i in (site.line - 1, site.line - 2) if i >= 0)


def test_few_op_tests_outside_the_table() -> None:
    sites = project_sites()
    shown = "\n".join(f"  {s.path}:{s.line}: {s.text}" for s in sites)
    assert len(sites) <= ALLOWED, f"ask quill/ops.py's table instead:\n{shown}"
    uncommented = [s for s in sites if not _commented(s)]
    assert not uncommented, f"say why with '{MARK}':\n{shown}"


def test_the_walk_finds_each_kind_of_test() -> None:
    """The detector is not vacuous: each form it promises to find, it finds."""
    found = [
        "if ins.opcode is Opcode.ROT: pass",
        "x = op == Opcode.SUM",
        "x = op in (Opcode.ADD_CC, Opcode.SUB_CC)",
        "x = Opcode.SUM not in ops",
        "x = info.family is Family.MUL",
        "x = families.count(Family.ROT)",
        "x = family == 'mul'",
        "x = key != 'sum'",
        "x = rule == 'mul_pt'",
        "x = {Opcode.ADD_CC: 1}",
        "x = {(Opcode.ADD_CC, 1): 1}",
        "match op:\n    case Opcode.ROT:\n        pass",
        "from quill.ops import Opcode as Op\nx = op is Op.ROT",
        "import quill.ops\nx = op is quill.ops.Opcode.ROT",
    ]
    for source in found:
        assert sites_in(source, "m.py"), source
    clean = [
        "x = ins.opcode.rotates",
        "x = OPS[op].cost",
        "x = Instr('v', Opcode.ROT, ('a',), 1)",
        "x = name == 'result'",
        "x = row['rotate']",
    ]
    for source in clean:
        assert not sites_in(source, "m.py"), source


def test_each_family_and_operand_kinds_name_one_opcode() -> None:
    """:func:`quill.ops.opcode_for` is a lookup the direct lowering relies on: no two rows
    share a family and operand kinds."""
    for op, info in OPS.items():
        assert opcode_for(info.family, info.operands) is op
    with pytest.raises(KeyError, match="no rot instruction takes ct, ct"):
        opcode_for(Family.ROT, (Kind.CT, Kind.CT))


@given(st.integers(min_value=0, max_value=T - 1))
def test_the_units_the_lowering_folds_with_hold_in_the_semantics(x: int) -> None:
    """The lowering drops ``op(u, x)`` to ``x`` for a left unit u (``op(x, u)`` for a right
    one) and ``op(z, x)``, ``op(x, z)`` to z for an absorbing z: each as the row's own
    semantics compute it, on every slot value."""
    ring = ModTRing()
    for op, info in OPS.items():
        if info.left_unit is not None:
            assert apply_scalar(ring, op, [info.left_unit, x]) == x, op
        if info.right_unit is not None:
            assert apply_scalar(ring, op, [x, info.right_unit]) == x, op
        if info.absorbing is not None:
            z = info.absorbing
            assert apply_scalar(ring, op, [z, x]) == apply_scalar(ring, op, [x, z]) == z, op
