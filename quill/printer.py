"""Print Quill programs in canonical form: the inverse of :mod:`quill.parser`.

``parse_program(format_program(p)) == p`` for every valid program: constants are printed
before the instructions (the IR keeps them apart, and the parser accepts them anywhere
before their first use), and operands in the op table's order, which the parser keeps.
"""

from __future__ import annotations

from quill.ir import Const, Instr, Program
from quill.ops import OPS

INDENT = "    "


def format_const(c: Const) -> str:
    """``name = const(2)`` for one value, ``name = const([1, 0])`` for a periodic list."""
    if len(c.values) == 1:
        return f"{c.name} = const({c.values[0]})"
    return f"{c.name} = const([{', '.join(map(str, c.values))}])"


def format_instr(i: Instr) -> str:
    """``dest = op(args)``, with the rotation amount as the last operand."""
    operands = [*i.args, *([] if i.amount is None else [str(i.amount)])]
    return f"{i.dest} = {OPS[i.opcode].mnemonic}({', '.join(operands)})"


def format_program(p: Program) -> str:
    """The canonical Quill text of ``p``: 4-space indent, constants first, trailing newline."""
    params = ", ".join(f"{q.name}: {q.kind}" for q in p.params)
    lines = [f"kernel {p.name}({params}) {{"]
    lines += [INDENT + format_const(c) for c in p.consts]
    lines += [INDENT + format_instr(i) for i in p.body]
    lines += [f"{INDENT}return {p.result}", "}"]
    return "\n".join(lines) + "\n"
