"""The facts the synthesizer's optimality claims rest on, tested directly:

* the solver's cost is :func:`quill.cost.objective`: on random programs of the sketch, the
  encoding can price a program at exactly its Python rank and never below it;
* the solver's constraints accept every correct kernel: each published and hand-written
  kernel, fixed into the holes, satisfies the exact, support and degree models at every
  output slot that matters (so pruning by them is sound);
* :func:`porcupine.search.coefficients.coefficient_bound` bounds the integer coefficients of random
  programs of the sketch (the narrow relaxation is a proof only under that bound).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import z3
from hypothesis import given, settings
from hypothesis import strategies as st

from porcupine.budget import Budget
from porcupine.search.cegis import ring_for
from porcupine.search.coefficients import coefficient_bound
from porcupine.search.encode import SketchEncoding
from porcupine.search.refine import ExactSlots
from porcupine.search.restrictions import Restrictions, derive
from porcupine.search.sketch import (
    Component,
    Filled,
    Operand,
    Space,
    from_quill,
    space_for,
    to_quill,
)
from quill.cost import DEFAULT_TABLE, Objective, objective, row_us
from quill.interp import evaluate_at_slots
from quill.ir import Program
from quill.noise import ct_ct_depth
from quill.ops import OPS, Kind, Opcode
from quill.parser import load_program
from quill.slots import normalize_amount
from quill.spec import Spec, load_spec, parse_spec
from quill.verify import reference, symbolic_inputs

KERNELS = Path(__file__).parent.parent / "kernels"

# Single-stage specs: their published and baseline kernels have the sketch's shape. Roberts
# cross is checked against its flat formula, which is one stage.
SPECS = {
    "box_blur": KERNELS / "box_blur.spec",
    "dot_product": KERNELS / "dot_product.spec",
    "hamming_distance": KERNELS / "hamming_distance.spec",
    "l2_distance": KERNELS / "l2_distance.spec",
    "linear_regression": KERNELS / "linear_regression.spec",
    "polynomial_regression": KERNELS / "polynomial_regression.spec",
    "gx": KERNELS / "gx.spec",
    "gy": KERNELS / "gy.spec",
    "roberts_cross": KERNELS / "corpus" / "roberts_flat.spec",
}


def _sketch_holding(spec: Spec, program: Program) -> Space:
    """The derived sketch, widened to the program's ops, rotations and constants."""
    r = derive(reference(spec))
    ops = tuple(dict.fromkeys([*r.ops, *(i.opcode for i in program.body)]))
    ops = tuple(op for op in ops if op is not Opcode.ROT)
    amounts = {normalize_amount(i.amount, spec.n) for i in program.body if i.opcode is Opcode.ROT}
    rotations = tuple(sorted({*r.rotations, *amounts} - {0}))
    constants = tuple(sorted({*r.constants, *(c.values[0] for c in program.consts)}))
    return space_for(
        spec, dataclasses.replace(r, ops=ops, rotations=rotations, constants=constants)
    )


def _normalized(program: Program, n: int) -> Program:
    body = tuple(
        dataclasses.replace(i, amount=normalize_amount(i.amount, n))
        if i.opcode is Opcode.ROT
        else i
        for i in program.body
    )
    return dataclasses.replace(program, body=body)


@pytest.mark.slow
@pytest.mark.search
@pytest.mark.parametrize("kind", ["published", "baselines"])
@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_known_kernel_satisfies_the_encoding(name: str, kind: str) -> None:
    spec = load_spec(SPECS[name])
    program = _normalized(load_program(KERNELS / kind / f"{name}.quill"), spec.n)
    space = _sketch_holding(spec, program)
    filled = from_quill(program, space)
    assert filled is not None, f"{kind}/{name} does not have the sketch's shape"
    ring = ring_for(space.restrictions, spec.n)
    row = row_us(DEFAULT_TABLE, ring)
    rank = objective(program, ring, DEFAULT_TABLE, Objective.LATENCY)
    enc = SketchEncoding(space, len(filled.components), row, Objective.LATENCY)
    exact = ExactSlots(reference(spec), width=8)
    exact.slots = list(spec.output_slots())  # every slot that matters, not only the first
    facts = [enc.fixed(filled), *exact.constraints(enc), *exact.abstractions(enc)]
    assert enc.check([*facts, enc.same_rank(rank)], Budget(), symmetry=False) == z3.sat
    assert enc.check([*facts, enc.cheaper(rank)], Budget(), symmetry=False) == z3.unsat


# --- random programs of a sketch -------------------------------------------------------------

SKETCH_SPEC = """spec mixed
param n = 8
slots n
input a: ct vector(n)
input b: ct vector(n)
input c: pt vector(n)
output y[k]: vector(n) = 3 * a[k] * b[k + 1] + c[k] * a[k + 2] - 2 + a[k]
    where k < n - 2
"""


def _space() -> Space:
    spec = load_spec_text(SKETCH_SPEC)
    r = derive(reference(spec))
    everything = tuple(op for op in Opcode if op not in (Opcode.ROT, Opcode.RELIN))
    return space_for(spec, dataclasses.replace(r, ops=everything, max_depth=2, window=8))


def load_spec_text(text: str) -> Spec:
    return parse_spec(text)


@st.composite
def filled_sketches(draw: st.DrawFn, space: Space, size: int) -> Filled:
    """A random filled sketch of ``size`` components in which every component is used."""
    rots = (0, *space.restrictions.rotations)
    ct_leaves = [v for v in range(len(space.leaves)) if space.is_ct(v)]
    pt_leaves = [v for v in range(len(space.leaves)) if not space.is_ct(v)]
    comps: list[Component] = []
    for k in range(size):
        values = ct_leaves + [len(space.leaves) + j for j in range(k)]
        if k > 0:  # read the previous component, so that every component is used
            values = [len(space.leaves) + k - 1]
        op = draw(st.sampled_from(space.restrictions.ops))
        info = OPS[op]
        a = Operand(draw(st.sampled_from(values)), draw(st.sampled_from(rots)))
        b = None
        if info.arity == 2 and info.plaintext_operand:
            b = Operand(draw(st.sampled_from(pt_leaves)), 0)
        elif info.arity == 2:
            others = ct_leaves + [len(space.leaves) + j for j in range(k)]
            b = Operand(draw(st.sampled_from(others)), draw(st.sampled_from(rots)))
        amount = space.restrictions.window if info.has_amount else None
        comps.append(Component(op, a, b, amount))
    return Filled(tuple(comps))


SPACE = _space()


@pytest.mark.slow
@pytest.mark.search
@settings(max_examples=40, deadline=None)
@given(data=st.data(), size=st.integers(1, 4), goal=st.sampled_from(list(Objective)))
def test_the_solver_prices_programs_as_quill_cost_does(
    data: st.DataObject, size: int, goal: Objective
) -> None:
    filled = data.draw(filled_sketches(SPACE, size))
    program = to_quill(filled, SPACE, "random")
    if ct_ct_depth(program) > SPACE.restrictions.max_depth:
        return  # outside the sketch's depth bound: the encoding rejects it, rightly
    ring = ring_for(SPACE.restrictions, SPACE.n)
    enc = SketchEncoding(SPACE, size, row_us(DEFAULT_TABLE, ring), goal)
    rank = objective(program, ring, DEFAULT_TABLE, goal)
    fixed = [enc.fixed(filled)]
    assert enc.check([*fixed, enc.same_rank(rank)], Budget(), symmetry=False) == z3.sat
    assert enc.check([*fixed, enc.cheaper(rank)], Budget(), symmetry=False) == z3.unsat


IntPoly = dict[tuple[int, ...], int]


class _IntPolys:
    """Polynomials with exact integer coefficients (no reduction at all)."""

    def const(self, c: int) -> IntPoly:
        return {(): c} if c else {}

    def add(self, a: IntPoly, b: IntPoly) -> IntPoly:
        out = dict(a)
        for m, c in b.items():
            out[m] = out.get(m, 0) + c
        return {m: c for m, c in out.items() if c}

    def neg(self, a: IntPoly) -> IntPoly:
        return {m: -c for m, c in a.items()}

    def sub(self, a: IntPoly, b: IntPoly) -> IntPoly:
        return self.add(a, self.neg(b))

    def mul(self, a: IntPoly, b: IntPoly) -> IntPoly:
        out: IntPoly = {}
        for ma, ca in a.items():
            for mb, cb in b.items():
                m = tuple(sorted(ma + mb))
                out[m] = out.get(m, 0) + ca * cb
        return {m: c for m, c in out.items() if c}


@settings(max_examples=60, deadline=None)
@given(data=st.data(), size=st.integers(1, 4))
def test_the_coefficient_bound_bounds_random_programs(data: st.DataObject, size: int) -> None:
    filled = data.draw(filled_sketches(SPACE, size))
    program = to_quill(filled, SPACE, "random")
    if ct_ct_depth(program) > SPACE.restrictions.max_depth:
        return
    spec = load_spec_text(SKETCH_SPEC)
    sym = symbolic_inputs(spec)
    ring = _IntPolys()
    vectors = {name: [dict(p) for p in vec] for name, vec in sym.vectors.items()}
    got = evaluate_at_slots(program, ring, vectors, range(spec.n), spec.n)
    norm = max(sum(abs(c) for c in p.values()) for p in got.values())
    assert norm <= coefficient_bound(SPACE.restrictions, size)


def test_the_restrictions_of_the_test_sketch_offer_every_op() -> None:
    assert isinstance(SPACE.restrictions, Restrictions)
    assert {Opcode.MUL_CC, Opcode.MUL_CP, Opcode.SUM, Opcode.ADD_CP} <= set(SPACE.restrictions.ops)
    assert any(leaf.kind is Kind.PT for leaf in SPACE.leaves)
