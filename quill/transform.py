"""Program transformations that preserve slot semantics: inlining one kernel into another,
common-subexpression elimination and dead-code elimination."""

from __future__ import annotations

from collections.abc import Mapping

from quill.ir import Const, Instr, Param, Program
from quill.ops import OPS


def eliminate_dead_code(program: Program) -> Program:
    """Drop instructions and constants the result does not depend on."""
    live = live_values(program)
    consts = tuple(c for c in program.consts if c.name in live)
    body = tuple(i for i in program.body if i.dest in live)
    return Program(program.name, program.params, consts, body, program.result)


def eliminate_common_subexpressions(program: Program) -> Program:
    """Merge instructions that compute the same op on the same operands (commutative
    operands in either order), and constants with the same values."""
    rename: dict[str, str] = {}
    consts: dict[tuple[int, ...], str] = {}
    kept_consts: list[Const] = []
    for c in program.consts:
        if c.values in consts:
            rename[c.name] = consts[c.values]
        else:
            consts[c.values] = c.name
            kept_consts.append(c)
    seen: dict[tuple[object, ...], str] = {}
    body: list[Instr] = []
    for ins in program.body:
        args = tuple(rename.get(a, a) for a in ins.args)
        key_args = tuple(sorted(args)) if OPS[ins.opcode].commutative else args
        key = (ins.opcode, key_args, ins.amount)
        if key in seen:
            rename[ins.dest] = seen[key]
            continue
        seen[key] = ins.dest
        body.append(Instr(ins.dest, ins.opcode, args, ins.amount))
    result = rename.get(program.result, program.result)
    return Program(program.name, program.params, tuple(kept_consts), tuple(body), result)


def inline(
    outer: Program, inner: Mapping[str, Program], params: tuple[Param, ...], name: str
) -> Program:
    """Replace each parameter of ``outer`` named in ``inner`` by that program's body.

    The inner programs read the parameters ``params`` (by name), which also become the
    composed program's parameters. Inner values are prefixed with their stage name, so the
    result stays in SSA form.
    """
    consts: list[Const] = list(outer.consts)
    body: list[Instr] = []
    outer_names: dict[str, str] = {}
    for stage, prog in inner.items():
        local = {p.name: p.name for p in prog.params}
        for c in prog.consts:
            local[c.name] = f"{stage}_{c.name}"
            consts.append(Const(local[c.name], c.values))
        for ins in prog.body:
            local[ins.dest] = f"{stage}_{ins.dest}"
            body.append(
                Instr(local[ins.dest], ins.opcode, tuple(local[a] for a in ins.args), ins.amount)
            )
        outer_names[stage] = local[prog.result]
    for ins in outer.body:
        args = tuple(outer_names.get(a, a) for a in ins.args)
        body.append(Instr(ins.dest, ins.opcode, args, ins.amount))
    result = outer_names.get(outer.result, outer.result)
    return Program(name, params, tuple(consts), tuple(body), result)


def simplify(program: Program) -> Program:
    """CSE, then DCE."""
    return eliminate_dead_code(eliminate_common_subexpressions(program))


def live_values(program: Program) -> set[str]:
    """The names the result depends on (the result included): the one liveness analysis."""
    live = {program.result}
    for ins in reversed(program.body):
        if ins.dest in live:
            live.update(ins.args)
    return live


def live_instructions(program: Program) -> list[Instr]:
    """The instructions the result depends on, in program order."""
    live = live_values(program)
    return [ins for ins in program.body if ins.dest in live]
