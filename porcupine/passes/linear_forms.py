"""A kernel's values as linear combinations of other values, by the op table's own semantics
(:func:`quill.ops.apply` on an algebra of linear forms), for the passes over verified kernels.

A form maps terms ``rot(name, k)`` to coefficients mod t. With a slot count, rotations are
linear and move a form's terms (``rot(rot(p, a), b) = rot(p, a + b)`` on cyclic slots:
:mod:`porcupine.passes.rotation_forms`); without one, a rotated value is a variable of its own and
every shift is 0 (:mod:`porcupine.passes.fewer_products`). Products of ciphertexts, plaintext
addends and multiplies by plaintexts that differ between slots are not linear; a library sum
stays whole (a fast path, not a chain to take apart).
"""

from __future__ import annotations

import contextlib
from collections import defaultdict

from quill.algebra import SlotAlgebra
from quill.ir import Program
from quill.noise import uniform_constants
from quill.ops import OPS, Kind, apply
from quill.slots import T

Term = tuple[str, int]  # rot(name, k), k mod the slot count (0 when rotations are variables)
Form = dict[Term, int]  # a linear combination of terms, coefficients mod t


class _NotLinear(Exception):
    pass


class _Forms:
    """:data:`Form` values (an ``int`` for a uniform constant); what is not linear raises."""

    def __init__(self, slots: int | None) -> None:
        self.slots = slots

    def add(self, a: Form | int, b: Form | int) -> Form:
        return _sum(a, b, 1)

    def sub(self, a: Form | int, b: Form | int) -> Form:
        return _sum(a, b, -1)

    def mul(self, a: Form | int, b: Form | int) -> Form:
        if isinstance(a, int) and isinstance(b, dict):
            a, b = b, a
        if isinstance(a, dict) and isinstance(b, int):
            return _sum({}, a, b)
        raise _NotLinear  # a product of ciphertexts, or of constants

    def neg(self, a: Form | int) -> Form:
        return _sum({}, a, -1)

    def rot(self, a: Form | int, k: int) -> Form:
        if isinstance(a, int) or self.slots is None:
            raise _NotLinear  # without a slot count, a rotated value is a variable of its own
        slots = self.slots
        return {(name, (j + k) % slots): c for (name, j), c in a.items()}


def _sum(a: Form | int, b: Form | int, c: int) -> Form:
    if isinstance(a, int) or isinstance(b, int):
        raise _NotLinear  # affine (a plaintext addend): a variable of its own
    out = defaultdict(int, a)
    for term, k in b.items():
        out[term] = (out[term] + c * k) % T
    return {term: k for term, k in out.items() if k}


def linear_values(program: Program, slots: int | None = None) -> dict[str, Form]:
    """Each value that is a linear combination of others, as that combination of its
    operands (with ``slots``, rotations included)."""
    uniform = uniform_constants(program)
    kinds = program.kinds()
    algebra: SlotAlgebra[Form | int] = _Forms(slots)
    forms: dict[str, Form] = {}
    for ins in program.body:
        if OPS[ins.opcode].sums:
            continue
        if any(kinds[a] is Kind.PT and a not in uniform for a in ins.args):
            continue  # a plaintext that differs between slots: not a scalar
        args: list[Form | int] = [uniform.get(a, {(a, 0): 1}) for a in ins.args]
        with contextlib.suppress(_NotLinear):
            form = apply(algebra, ins.opcode, args, ins.amount)
            if isinstance(form, dict):
                forms[ins.dest] = form
    return forms


def expand(name: str, program: Program, linear: dict[str, Form], slots: int | None = None) -> Form:
    """``name`` as a combination of (rotations of) the values no linear op defines: each
    linear value expanded after all its users, in reverse program order (linear time on a
    DAG). ``slots`` as given to :func:`linear_values`."""
    coeffs: defaultdict[Term, int] = defaultdict(int, {(name, 0): 1})
    for ins in reversed(program.body):
        if ins.dest not in linear:
            continue
        shifts = [(j, coeffs.pop((v, j))) for v, j in list(coeffs) if v == ins.dest]
        for j, c in shifts:
            for (v, k), d in linear[ins.dest].items():
                term = (v, (j + k) % slots if slots else 0)
                coeffs[term] = (coeffs[term] + c * d) % T
    return {term: c for term, c in coeffs.items() if c}
