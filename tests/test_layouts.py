"""Client packings and kernels in natural layouts (masks): every packing is proven equal to
its spec, every kernel to its packing's spec, and the search picks the cheapest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from porcupine.layouts.choices import aligned, broadcast, options, packed, requested
from porcupine.layouts.packing import Packing, check, natural
from porcupine.lowering import lower, needs_movement
from porcupine.synthesize import synthesize
from quill.errors import QuillError
from quill.interp import interpret
from quill.spec import Spec, load_spec, parse_spec
from quill.verify import verify

LAYOUTS = Path(__file__).parent.parent / "kernels" / "layouts"
NAMES = sorted(p.stem for p in LAYOUTS.glob("*.spec"))


def _spec(name: str) -> Spec:
    return load_spec(LAYOUTS / f"{name}.spec")


def _gather(packing: Packing, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """What the client encrypts: each ciphertext's slots from the inputs' elements."""
    return {
        c.name: np.array([0 if e is None else int(values[e[0]][e[1]]) for e in c.slots])
        for c in packing.ciphertexts
    }


@pytest.mark.parametrize("name", NAMES)
def test_every_packing_offered_is_the_spec(name: str) -> None:
    spec = _spec(name)
    found = options(spec)
    assert found[0].name == "natural" and any(p.name.startswith("aligned") for p in found)
    for packing in found:
        assert check(packing, spec), packing.name
        # and on concrete inputs, through the packing's own gather
        rng = np.random.default_rng(0)
        values = {k: np.asarray(v) % 65537 for k, v in spec.random_inputs(rng).items()}
        want = spec.reference(values)
        got = packing.spec.reference(_gather(packing, values))
        assert all(got[slot] == want[o] for o, slot in packing.output)


def test_a_wrong_packing_is_caught() -> None:
    spec = _spec("matmul2")
    good = aligned(spec, terms_major=True)
    assert good is not None
    first, *rest = good.ciphertexts
    swapped = first.slots[1:] + first.slots[:1]
    bad = Packing(
        good.name, (type(first)(first.name, first.kind, swapped), *rest), good.output, good.spec
    )
    assert not check(bad, spec)


@pytest.mark.parametrize("name", NAMES)
def test_natural_layouts_get_a_direct_kernel_with_masks(name: str) -> None:
    spec = _spec(name)
    assert needs_movement(spec)
    program = lower(spec)
    assert program is not None and verify(program, spec).ok
    assert any(len(c.values) > 1 for c in program.consts)  # it does use a per-slot mask


def test_specs_whose_reads_line_up_need_no_movement() -> None:
    for path in (LAYOUTS.parent).glob("*.spec"):
        assert not needs_movement(load_spec(path)), path.name


@pytest.mark.search
def test_aligned_matrix_product_is_a_product_and_a_reduction() -> None:
    spec = _spec("matmul2")
    packing = aligned(spec, terms_major=True)
    assert packing is not None and packing.slots == 8
    result = synthesize(packing.spec, timeout=60)
    assert verify(result.program, packing.spec).ok
    assert result.measures.instructions <= 4  # one ct*ct product, one rotation, one add


@pytest.mark.search
def test_layout_search_beats_the_natural_layout() -> None:
    spec = _spec("matmul2")
    result = synthesize(spec, timeout=120, layout="search")
    tried = {t["packing"]: t for t in result.layouts}
    assert "natural" in tried and len(tried) >= 3
    assert result.packing is not None and result.packing.name.startswith("aligned")
    assert result.cost < tried["natural"]["cost"]
    assert verify(result.program, result.packing.spec).ok


def test_broadcast_gives_each_tap_a_ciphertext() -> None:
    spec = _spec("conv1d_natural")
    packing = broadcast(spec)
    assert packing is not None
    assert sorted(c.name for c in packing.ciphertexts) == ["h__0", "h__1", "h__2", "x"]
    tap = next(c for c in packing.ciphertexts if c.name == "h__1")
    assert set(tap.slots) == {("h", 1)}


PACKED = """spec pk
param n = 8
slots n
input a: ct vector(4)
input b: ct vector(4) packing with a
output y[k]: vector(n) = a[k] * b[k] where k < 4
"""


def test_packing_with_shares_one_ciphertext() -> None:
    spec = parse_spec(PACKED)
    packing = requested(spec)
    assert [c.name for c in packing.ciphertexts] == ["a__b"]
    assert packing.ciphertexts[0].slots[:5] == (("a", 0), ("a", 1), ("a", 2), ("a", 3), ("b", 0))
    assert check(packing, spec)
    result = synthesize(spec, timeout=60)
    assert result.packing is not None and result.packing.name == "packed a"
    inputs = {"a__b": np.arange(8) + 1}
    got = interpret(result.program, inputs)
    assert [int(got[k]) for k in range(4)] == [(k + 1) * (k + 5) for k in range(4)]


def test_natural_packing_is_the_identity() -> None:
    spec = _spec("matmul2")
    assert natural(spec).spec is spec and packed(spec) is None  # 4 + 4 elements, 4 slots


@pytest.mark.parametrize(
    ("clause", "message"),
    [
        ("packing tield", "unknown packing tield"),
        ("packing with c", "packed with c, which is no input"),
        ("packing with b2", "cannot be packed with itself"),
    ],
)
def test_packing_clauses_are_checked(clause: str, message: str) -> None:
    text = f"""spec bad
slots 8
input b2: ct vector(4) {clause}
output y[k]: vector(8) = b2[k] where k < 4
"""
    with pytest.raises(QuillError, match=message):
        parse_spec(text)
