"""Relinearization placement: where a ct*ct product goes back to two elements.

A ct*ct product (``mul``) is a ciphertext of three elements. OpenFHE adds, subtracts and
negates three-element ciphertexts correctly, so a sum of products can be relinearized once,
after the sum (``EvalMultNoRelin`` + ``EvalAdd`` + ``Relinearize``). Everything else needs
two elements: a rotation, a multiply, any op with a plaintext, an add whose other operand
has two elements, and the kernel's result (an application may compute on with it).
Measured: OpenFHE checks none of this and decrypts such mixtures to garbage, so the rule is
enforced here, by construction.

:func:`place_relinearizations` inserts a ``relin`` after every value that must have two
elements where it is used, once per value, and redirects every use to the relinearized
value. It is the lowering every consumer of a program applies first (cost, noise, the
backend), so what is priced is what is emitted. Programs may also carry explicit ``relin``
instructions; the pass keeps them and adds only what is missing (it is idempotent). It
places the fewest relinearizations the rule allows.
"""

from __future__ import annotations

import functools
import itertools

from quill.ir import Instr, Program
from quill.ops import OPS, Kind, Opcode


def sizes(program: Program, relinearized: set[str]) -> dict[str, bool]:
    """For every ciphertext value: whether its users see three elements, given the values
    in ``relinearized`` are relinearized after their definition."""
    kinds = program.kinds()
    big = {p.name: False for p in program.params if p.kind is Kind.CT}
    for ins in program.body:
        info = OPS[ins.opcode]
        if info.grows:
            three = True
        elif info.relinearizes or info.needs_linear:
            three = False
        else:  # add, sub, neg pass the size on
            three = any(big[a] for a in ins.args if kinds[a] is Kind.CT)
        big[ins.dest] = three and ins.dest not in relinearized
    return big


def valid(program: Program, relinearized: set[str]) -> bool:
    """Whether relinearizing ``relinearized`` leaves no three-element value where two
    elements are needed."""
    kinds = program.kinds()
    big = sizes(program, relinearized)
    if big.get(program.result, False):
        return False
    for ins in program.body:
        info = OPS[ins.opcode]
        cts = [big[a] for a in ins.args if kinds[a] is Kind.CT]
        if (info.needs_linear and any(cts)) or (info.same_size and len(set(cts)) > 1):
            return False
    return True


EXHAUSTIVE = 12
"""Up to this many undecided values, every set is tried in order of size."""


def _violations(program: Program, relinearized: set[str]) -> list[tuple[str, bool]]:
    """Each three-element value that meets a use needing two elements, in program order,
    with whether it is a product (then nothing but its own ``relin`` can fix the use)."""
    kinds = program.kinds()
    big = sizes(program, relinearized)
    grows = {i.dest for i in program.body if OPS[i.opcode].grows}
    out = []
    for ins in program.body:
        info = OPS[ins.opcode]
        cts = [a for a in ins.args if kinds[a] is Kind.CT]
        if info.needs_linear or (info.same_size and len({big[a] for a in cts}) > 1):
            out += [(a, a in grows) for a in cts if big[a]]
    if big.get(program.result, False):
        out.append((program.result, program.result in grows))
    return out


def needs_relinearization(program: Program) -> set[str]:
    """The values that get a ``relin``: the fewest such that no three-element value meets a
    use that needs two elements.

    A product that meets such a use needs its own ``relin`` in every valid placement (its
    size comes from nothing else), so those are taken first, until no more are forced.
    The values still three-element then are few; every set of them is tried in order of
    size. Past :data:`EXHAUSTIVE` of them, relinearizations are added in program order where
    a use forces them, and any that turn out unneeded are dropped again.
    """
    if valid(program, set()):  # already placed (every consumer lowers what it is given)
        return set()
    need: set[str] = set()
    while forced := {v for v, product in _violations(program, need) if product}:
        need |= forced
    undecided = [v for v, three in sizes(program, need).items() if three]
    if len(undecided) <= EXHAUSTIVE:
        for k in range(len(undecided) + 1):
            for chosen in itertools.combinations(undecided, k):
                if valid(program, need | set(chosen)):
                    return need | set(chosen)
    while found := _violations(program, need):
        need.add(found[0][0])
    for v in sorted(need):
        if valid(program, need - {v}):
            need.discard(v)
    return need


@functools.lru_cache(maxsize=1024)
def place_relinearizations(program: Program) -> Program:
    """``program`` with a ``relin`` after every value of :func:`needs_relinearization`,
    and every use reading the relinearized value."""
    need = needs_relinearization(program)
    if not need:
        return program
    taken = {p.name for p in program.params} | {c.name for c in program.consts}
    taken |= {i.dest for i in program.body}
    rename: dict[str, str] = {}
    body: list[Instr] = []
    for ins in program.body:
        args = tuple(rename.get(a, a) for a in ins.args)
        body.append(Instr(ins.dest, ins.opcode, args, ins.amount))
        if ins.dest in need:
            name = _fresh(f"{ins.dest}_rl", taken)
            body.append(Instr(name, Opcode.RELIN, (ins.dest,)))
            rename[ins.dest] = name
    result = rename.get(program.result, program.result)
    return Program(program.name, program.params, program.consts, tuple(body), result)


def _fresh(name: str, taken: set[str]) -> str:
    candidate, k = name, 1
    while candidate in taken:
        candidate, k = f"{name}{k}", k + 1
    taken.add(candidate)
    return candidate
