"""A kernel of variance's sketch cheaper than the recorded one (eval/bounds.md, variance):
one reduction, after the product, and three rotations before it. The bound over the
sketch's kernels must stay at or below it, so no term may claim two reductions."""

from __future__ import annotations

from pathlib import Path

from porcupine.search.bounds import floor_for, lower_bound
from porcupine.search.cegis import ring_for
from porcupine.search.restrictions import derive
from quill.cost import DEFAULT_TABLE, Objective, objective, row_us
from quill.ir import Program
from quill.ops import Opcode
from quill.parser import load_program, parse_program
from quill.slots import normalize_amount
from quill.spec import load_spec
from quill.transform import live_instructions
from quill.verify import reference, verify

CORPUS = Path(__file__).parent.parent / "kernels" / "corpus"

# alpha = 7 a - a[k+4] - 2 (a[k+1] + a[k+5] + a[k+2]), and sum_k alpha[k] a[k] is
# 7 sum a^2 - 2 sum_{i<j} a_i a_j = 8 sum a^2 - (sum a)^2: a pair at distance d in 1..3 is
# read once at offset d or 8 - d (5 = -3), one at distance 4 once per pair at offset 4
ROTATED = """kernel variance(a: ct) {
    k8 = const(8)
    r4 = rot(a, 4)
    r2 = rot(a, 2)
    u = add(a, r4)
    u1 = rot(u, 1)
    w = add(u1, r2)
    w2 = add(w, w)
    t = add(w2, u)
    a8 = mul(a, k8)
    f = sub(a8, t)
    p = mul(f, a)
    y = sum(p, 8)
    return y
}
"""


def _components(program: Program) -> int:
    live = live_instructions(program)
    return len([i for i in live if i.opcode not in (Opcode.ROT, Opcode.RELIN)])


def test_a_rotated_variance_kernel_is_in_the_sketch_and_cheaper() -> None:
    spec = load_spec(CORPUS / "variance.spec")
    ref = reference(spec)
    program = parse_program(ROTATED)
    assert verify(program, ref).ok
    restrictions = derive(ref)
    amounts = {
        normalize_amount(i.amount, spec.n)
        for i in program.body
        if i.opcode is Opcode.ROT and i.amount is not None
    }
    assert amounts <= set(restrictions.rotations)  # the sketch holds it as it is
    where = ring_for(restrictions, spec.n)
    row = row_us(DEFAULT_TABLE, where)
    recorded = load_program(CORPUS / "results" / "variance.quill")
    have = objective(program, where, DEFAULT_TABLE, Objective.LATENCY)
    assert have < objective(recorded, where, DEFAULT_TABLE, Objective.LATENCY)
    floor = floor_for(ref, restrictions, in_sketch=True)
    for goal in Objective:
        cost = objective(program, where, DEFAULT_TABLE, goal)
        assert cost >= lower_bound(floor, _components(program), row, goal)
        assert cost >= lower_bound(floor, 0, row, goal)
