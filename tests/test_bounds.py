"""The search's latency lower bound on rotations (porcupine.search.bounds.rotations_us): against a
brute force over groupings, and below what every known kernel pays."""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from pathlib import Path

import pytest

from porcupine.search.bounds import (
    fan_in,
    fewest_components,
    floor_for,
    lower_bound,
    most_offsets,
    plans,
    rotations_us,
)
from porcupine.search.cegis import ring_for
from porcupine.search.restrictions import derive
from porcupine.synthesize import synthesize
from quill.cost import DEFAULT_TABLE, Objective, objective, rotation_group_us, row_us
from quill.ir import Program
from quill.noise import parameters
from quill.ops import Opcode
from quill.params import SETS
from quill.parser import load_program, parse_program
from quill.spec import load_spec, parse_spec
from quill.stats import counts
from quill.verify import reference, verify

KERNELS = Path(__file__).parent.parent / "kernels"
ROWS = ("n2048_q50_w10", "n4096_q108_w27", "n8192_q180_w0")
KNOWN = [  # EvalSum has rounds of its own: the search takes the lesser of the two bounds
    p
    for p in sorted(KERNELS.glob("published/*.quill")) + sorted(KERNELS.glob("baselines/*.quill"))
    if all(i.opcode is not Opcode.SUM for i in load_program(p).body)
]


def _row(name: str) -> dict[str, int]:
    return row_us(DEFAULT_TABLE, next(s for s in SETS if s.name == name))


def _brute(offsets: int, row: dict[str, int]) -> int:
    """Every multiset of group sizes whose prod (1 + k) reaches ``offsets``."""
    best = math.inf
    for groups in range(1, offsets.bit_length() + 1):
        for sizes in itertools.combinations_with_replacement(range(1, offsets), groups):
            if math.prod(1 + k for k in sizes) >= offsets:
                best = min(best, sum(rotation_group_us(k, row) for k in sizes))
    return int(best)


@pytest.mark.slow
@pytest.mark.parametrize("name", ROWS)
def test_the_bound_is_the_cheapest_grouping(name: str) -> None:
    row = _row(name)
    assert rotations_us(1, row) == 0
    for offsets in range(2, 20):
        assert rotations_us(offsets, row) == _brute(offsets, row), offsets
        # never below the old bound, which priced ceil(log2 D) rotations as one group
        assert rotations_us(offsets, row) >= rotation_group_us(math.ceil(math.log2(offsets)), row)


def _rotation_us(program: Program, row: dict[str, int]) -> int:
    amounts: defaultdict[str, set[int]] = defaultdict(set)
    for ins in program.body:
        if ins.opcode is Opcode.ROT and ins.amount is not None:
            amounts[ins.args[0]].add(ins.amount)
    return sum(rotation_group_us(len(a), row) for a in amounts.values())


@pytest.mark.slow
@pytest.mark.parametrize(
    "path",
    sorted((KERNELS / "published").glob("*.quill"))
    + sorted((KERNELS / "baselines").glob("*.quill")),
)
def test_no_known_kernel_pays_less_than_the_bound(path: Path) -> None:
    program = load_program(path)
    spec = load_spec(KERNELS / f"{path.stem}.spec")
    offsets = most_offsets(reference(spec))
    for name in (*ROWS, parameters(program, spec.n).param_set.name):
        row = _row(name)
        assert _rotation_us(program, row) >= rotations_us(offsets, row), (path.stem, name)


ALL = sorted(KERNELS.glob("published/*.quill")) + sorted(KERNELS.glob("baselines/*.quill"))


@pytest.mark.slow
@pytest.mark.parametrize("path", ALL, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_no_known_kernel_beats_the_floor_over_every_kernel(path: Path) -> None:
    # lower_bound with 0 components bounds every kernel of the sketch, whatever its size:
    # the published and hand-written kernels, library sums included, are all at or above it
    program = load_program(path)
    spec = load_spec(KERNELS / f"{path.stem}.spec")
    ref = reference(spec)
    restrictions = derive(ref)
    ring = ring_for(restrictions, spec.n)
    row = row_us(DEFAULT_TABLE, ring)
    c = counts(program)
    floor = floor_for(ref, restrictions)
    window = restrictions.window if c.sums else None
    assert c.instructions - c.rotations >= floor.least_components(window)
    for goal in Objective:
        assert objective(program, ring, DEFAULT_TABLE, goal) >= lower_bound(floor, 0, row, goal)


def test_a_window_sum_needs_as_many_adds_as_doublings() -> None:
    # x[k] + ... + x[k+7]: three two-operand instructions at least, or one EvalSum(8)
    spec = parse_spec(
        "spec w8\nparam n = 16\nslots n\ninput x: ct vector(n)\n"
        "output y[k]: vector(n) = x[k] + x[k+1] + x[k+2] + x[k+3] + x[k+4] + x[k+5]"
        " + x[k+6] + x[k+7] where k < 8\n"
    )
    ref = reference(spec)
    floor = floor_for(ref, derive(ref))
    assert floor.offsets == 8 and floor.products == 0 and not floor.plaintext
    assert floor.least_components(None) == 3
    assert floor.least_components(8) == 1
    assert floor.least_components(2) == 3  # sums of two: one doubling each


def test_fan_in_counts_groups_paths_and_a_bypassed_single_group() -> None:
    # two groups of four reaching 25 offsets: 3 + 3 additions for the groups, and every
    # choice is needed, so the paths part three ways (to the output and to both sources)
    # before their first rotation: two more, where the count of paths asked one
    assert fan_in((4, 4), 25, 1) == 8
    assert fan_in((4, 4), 24, 1) == 7  # a spare choice: the first group is not forced
    # one group of two reaching three offsets: the path without a rotation needs an edge
    assert fan_in((2,), 3, 1) == 2
    # three groups of one rotation reaching eight offsets: doublings only
    assert fan_in((1, 1, 1), 8, 1) == 3
    # inputs meet: four ciphertext inputs read at one slot need three two-operand ops
    assert fan_in((), 1, 4) == 3
    # a sum of four brings four offsets with no addition
    assert fan_in((), 4, 1, (4,)) == 0


def test_one_more_group_beside_two_is_a_plan_of_its_own() -> None:
    # Two groups of 4 for the 5x5 box need 8 additions (every choice is taken, the paths
    # part three ways first), but with a third group of one rotation the count of paths
    # asks only 7: that kernel is not dearer than its two groups' plan in additions, so it
    # is priced apart (with its rotation), and three groups get no such term.
    assert fan_in((1, 4, 4), 25, 1) == 7
    assert fan_in((8, 8, 8), 729, 1) == fan_in((8, 8, 8), 729, 1, targets=False)
    spec = load_spec(KERNELS / "corpus" / "blur5.spec", {"w": 8, "h": 8})
    ref = reference(spec)
    shapes = {(p.rotations, p.binary) for p in plans(floor_for(ref, derive(ref)))}
    assert ((4, 4), 8) in shapes and ((1, 4, 4), 7) in shapes


def test_the_floor_over_every_kernel_counts_library_sums() -> None:
    # EvalSum(x, 4) is a kernel for four neighbours: the bound over every kernel is below it
    spec = parse_spec(
        "spec four\nparam n = 8\nslots n\ninput x: ct vector(n)\n"
        "output y[k]: vector(n) = x[k] + x[k + 1] + x[k + 2] + x[k + 3] where k < 4\n"
    )
    program = parse_program("kernel four(x: ct) {\n    s = sum(x, 4)\n    return s\n}\n")
    ref = reference(spec)
    assert verify(program, ref).ok
    restrictions = derive(ref)
    ring = ring_for(restrictions, spec.n)
    row = row_us(DEFAULT_TABLE, ring)
    floor = floor_for(ref, restrictions)
    assert fewest_components(floor) == 1
    for goal in Objective:
        assert lower_bound(floor, 0, row, goal) <= objective(program, ring, DEFAULT_TABLE, goal)


@pytest.mark.search
def test_a_kernel_meeting_the_bound_in_the_sketch_is_proven_without_its_size() -> None:
    # three hoisted rotations and three additions: no kernel of the sketch (no sums) is
    # cheaper, which the bound shows though the hint keeps the search to one component
    spec = parse_spec(
        "spec four\nparam n = 8\nslots n\ninput x: ct vector(n)\n"
        "output y[k]: vector(n) = x[k] + x[k + 1] + x[k + 2] + x[k + 3] where k < 4\n"
        "hint components 1\n"
    )
    result = synthesize(spec, timeout=60)
    assert result.verified and result.optimal
    assert "any size in the sketch" in result.optimal_scope


@pytest.mark.search
def test_a_cyclic_blur_is_optimal_over_every_kernel() -> None:
    # two hoisted groups of two rotations and four additions meet the bound over every
    # kernel: the rearranged formula ends the search at once
    result = synthesize(load_spec(KERNELS / "corpus" / "blur3_cyclic.spec"), timeout=60)
    assert result.optimal and "meets the lower bound" in result.optimal_scope
    assert counts(result.program).rotations == 4
