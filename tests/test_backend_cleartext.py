"""The cleartext backend: a fake CryptoContext on numpy slots that agrees with OpenFHE where
OpenFHE is right and refuses what OpenFHE gets silently wrong; and, through it, properties
of emitted kernels on many random programs in milliseconds each."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before openfhe loads (see test_backend.py)

import numpy as np
import openfhe
import pytest
from helpers import DEEPER, KERNELS, emittable
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from strategies import programs, slot_counts

from porcupine.backend import (
    CleartextError,
    DepthProbe,
    ProgramSpec,
    Session,
    emitted_module,
    planning,
    run_cleartext,
)
from porcupine.backend.cleartext import OPENFHE, ClearCiphertext, ClearContext
from quill.ir import Program
from quill.noise import ct_ct_depth
from quill.ops import Kind, sum_keys
from quill.parser import load_program, parse_program
from quill.printer import format_program
from quill.relin import needs_relinearization
from quill.slots import T
from quill.spec import load_spec
from quill.transform import eliminate_dead_code

ROTATIONS = (1, -3, 100, 5)
WINDOW = 16  # EvalSum(ct, 16) needs the rotation keys sum_keys(16) = 1, 2, 3, 4, 8, 12
MANY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _context(backend: Any) -> tuple[Any, Any]:
    """A depth-1 context of ``backend`` (openfhe or the fake) with every key."""
    params = backend.CCParamsBFVRNS()
    params.SetPlaintextModulus(T)
    params.SetMultiplicativeDepth(1)
    cc = backend.GenCryptoContext(params)
    for feature in (backend.PKE, backend.KEYSWITCH, backend.LEVELEDSHE, backend.ADVANCEDSHE):
        cc.Enable(feature)
    keys = cc.KeyGen()
    cc.EvalMultKeyGen(keys.secretKey)
    cc.EvalRotateKeyGen(keys.secretKey, sorted({*ROTATIONS, *sum_keys(WINDOW)}))
    return cc, keys


def _operations(cc: Any, a: Any, b: Any, p: Any) -> dict[str, Any]:
    """The ciphertexts emitted kernels compute, from ciphertexts a, b and plaintext p."""
    product = cc.EvalMultNoRelin(a, b)
    pre = cc.EvalFastRotationPrecompute(a)
    return {
        "add": cc.EvalAdd(a, b),
        "sub": cc.EvalSub(a, b),
        "neg": cc.EvalNegate(a),
        "add_pt": cc.EvalAdd(a, p),
        "sub_pt": cc.EvalSub(a, p),
        "mul_pt": cc.EvalMult(a, p),
        "relin": cc.Relinearize(product),
        "lazy_sum": cc.Relinearize(cc.EvalSub(cc.EvalAdd(product, product), product)),
        "add_deeper": cc.EvalAdd(a, cc.Relinearize(product)),
        **{f"rot_{k}": cc.EvalRotate(a, k) for k in ROTATIONS},
        "hoisted_5": cc.EvalFastRotation(a, 5, cc.GetCyclotomicOrder(), pre),
        "evalsum": cc.EvalSum(a, WINDOW),
        "evalsum_2": cc.EvalSum(cc.EvalAdd(a, b), 2),
    }


@pytest.mark.openfhe
def test_the_fake_agrees_with_openfhe_on_every_slot() -> None:
    """Both rows of all N slots, and the noise scale degree, after each kind of op."""
    rng = np.random.default_rng(3)
    results = {}
    for name, backend in (("openfhe", openfhe), ("clear", OPENFHE)):
        cc, keys = _context(backend)
        n = cc.GetRingDimension()
        a, b, p = ([int(v) for v in rng.integers(0, T, n)] for _ in range(3))
        rng = np.random.default_rng(3)  # the same values for the other backend
        enc = [cc.Encrypt(keys.publicKey, cc.MakePackedPlaintext(v)) for v in (a, b)]
        outs = _operations(cc, *enc, cc.MakePackedPlaintext(p))
        results[name] = {}
        for op, ct in outs.items():
            plain = cc.Decrypt(keys.secretKey, ct)
            plain.SetLength(n)
            results[name][op] = (np.array(plain.GetPackedValue()) % T, ct.GetNoiseScaleDeg())
    for op, (slots, degree) in results["openfhe"].items():
        clear_slots, clear_degree = results["clear"][op]
        assert np.array_equal(slots, clear_slots), op
        assert degree == clear_degree, op


# --- what the fake refuses ------------------------------------------------------------------


@pytest.fixture
def fake() -> tuple[ClearContext, Any, ClearCiphertext, ClearCiphertext, Any]:
    """A cleartext context, its keys, a two-element and a three-element ciphertext, and a
    plaintext."""
    cc, keys = _context(OPENFHE)
    plain = cc.MakePackedPlaintext([1, 2, 3])
    two = cc.Encrypt(keys.publicKey, plain)
    return cc, keys, two, cc.EvalMultNoRelin(two, two), plain


MISUSE: dict[str, tuple[Callable[..., object], str]] = {
    "ct3 + ct2": (
        lambda cc, two, three, p: cc.EvalAdd(three, two),
        "EvalAdd of a 3-element and a 2-element ciphertext: OpenFHE returns garbage",
    ),
    "ct2 - ct3": (
        lambda cc, two, three, p: cc.EvalSub(two, three),
        "EvalSub of a 2-element and a 3-element ciphertext",
    ),
    "ct3 + pt": (
        lambda cc, two, three, p: cc.EvalAdd(three, p),
        "EvalAdd with a plaintext of a 3-element ciphertext .*relinearize it first",
    ),
    "pt - ct3": (
        lambda cc, two, three, p: cc.EvalSub(p, three),
        "EvalSub with a plaintext of a 3-element ciphertext",
    ),
    "ct3 * pt": (
        lambda cc, two, three, p: cc.EvalMult(p, three),
        "EvalMult by a plaintext of a 3-element ciphertext .*: OpenFHE aborts the process",
    ),
    "ct3 * ct2": (
        lambda cc, two, three, p: cc.EvalMultNoRelin(three, two),
        "EvalMultNoRelin of a 3-element ciphertext",
    ),
    "ct3 * ct2 relinearizing": (
        lambda cc, two, three, p: cc.EvalMult(two, three),
        "EvalMultNoRelin of a 3-element ciphertext",
    ),
    "rotate ct3": (
        lambda cc, two, three, p: cc.EvalRotate(three, 1),
        "EvalRotate of a 3-element ciphertext .*rotates it to garbage",
    ),
    "hoist ct3": (
        lambda cc, two, three, p: cc.EvalFastRotationPrecompute(three),
        "EvalFastRotationPrecompute of a 3-element ciphertext",
    ),
    "another's precompute": (
        lambda cc, two, three, p: cc.EvalFastRotation(
            cc.EvalNegate(two), 1, cc.GetCyclotomicOrder(), cc.EvalFastRotationPrecompute(two)
        ),
        "EvalFastRotation with another ciphertext's precompute",
    ),
    "wrong order": (
        lambda cc, two, three, p: cc.EvalFastRotation(
            two, 1, 16, cc.EvalFastRotationPrecompute(two)
        ),
        "EvalFastRotation with order 16, not the context's",
    ),
    "no rotation key": (
        lambda cc, two, three, p: cc.EvalRotate(two, 6),
        r"no rotation key for index 6 \(OpenFHE: map::at\)",
    ),
    "EvalSum ct3": (
        lambda cc, two, three, p: cc.EvalSum(three, 4),
        "EvalSum of a 3-element ciphertext .*sums it to garbage; relinearize it first",
    ),
    "EvalSum of 12": (
        lambda cc, two, three, p: cc.EvalSum(two, 12),
        r"EvalSum\(ct, 12\): OpenFHE sums a power-of-two window within a row",
    ),
    "EvalSum without its keys": (
        lambda cc, two, three, p: cc.EvalSum(two, 64),
        r"no rotation key for index 16 \(OpenFHE: map::at\), for EvalSum\(ct, 64\)",
    ),
    "rotation past the row": (
        lambda cc, two, three, p: cc.EvalRotate(two, cc.GetRingDimension() // 2),
        "rotation by 4096: OpenFHE rotates correctly only by",
    ),
    "a kernel returns ct3": (
        lambda cc, two, three, p: cc.Decrypt(cc.KeyGen().secretKey, three),
        "Decrypt under another secret key",
    ),
    "value t": (
        lambda cc, two, three, p: cc.MakePackedPlaintext([0, T]),
        "cannot encode integer 65537",
    ),
    "too many values": (
        lambda cc, two, three, p: cc.MakePackedPlaintext([0] * (cc.GetRingDimension() + 1)),
        "8193 values do not fit ring dimension 8192",
    ),
    "another context": (
        lambda cc, two, three, p: cc.EvalAdd(two, _context(OPENFHE)[0].MakePackedPlaintext([1])),
        "an operand from another crypto context",
    ),
}


@pytest.mark.parametrize("case", sorted(MISUSE))
def test_the_fake_refuses_what_openfhe_gets_wrong(
    fake: tuple[ClearContext, Any, ClearCiphertext, ClearCiphertext, Any], case: str
) -> None:
    cc, _, two, three, plain = fake
    call, message = MISUSE[case]
    with pytest.raises(CleartextError, match=message):
        call(cc, two, three, plain)


def test_the_fake_refuses_evalsum_without_advanced_she() -> None:
    params = OPENFHE.CCParamsBFVRNS()
    params.SetPlaintextModulus(T)
    cc = OPENFHE.GenCryptoContext(params)
    keys = cc.KeyGen()
    cc.EvalRotateKeyGen(keys.secretKey, [1])
    ciphertext = cc.Encrypt(keys.publicKey, cc.MakePackedPlaintext([1, 2]))
    with pytest.raises(CleartextError, match=r"EvalSum: Enable\(ADVANCEDSHE\) must be called"):
        cc.EvalSum(ciphertext, 2)


def test_the_fake_decrypts_only_relinearized_results_under_their_key(
    fake: tuple[ClearContext, Any, ClearCiphertext, ClearCiphertext, Any],
) -> None:
    cc, keys, _, three, _ = fake
    with pytest.raises(CleartextError, match="decrypting a kernel's result of a 3-element"):
        cc.Decrypt(keys.secretKey, three)
    lazy = cc.EvalNegate(cc.EvalAdd(three, three))  # fine on three elements, as in OpenFHE
    plain = cc.Decrypt(keys.secretKey, cc.Relinearize(lazy))
    plain.SetLength(3)
    assert plain.GetPackedValue() == [-2, -8, -18]


def test_the_fake_refuses_mixed_keys_and_missing_relinearization_keys(
    fake: tuple[ClearContext, Any, ClearCiphertext, ClearCiphertext, Any],
) -> None:
    cc, _, two, _, plain = fake
    other = cc.KeyGen()
    stranger = cc.Encrypt(other.publicKey, plain)
    with pytest.raises(CleartextError, match="Ciphertexts were not encrypted with same keys"):
        cc.EvalAdd(two, stranger)
    with pytest.raises(CleartextError, match=r"Relinearize without a relinearization key"):
        cc.Relinearize(cc.EvalMultNoRelin(stranger, stranger))
    with pytest.raises(TypeError, match="not a ciphertext or plaintext: int"):
        cc.EvalAdd(two, 3)


# --- emitted kernels on the cleartext backend --------------------------------------------


@pytest.mark.slow
@MANY
@given(data=st.data(), slots=slot_counts, seed=st.integers(0, 2**32 - 1))
def test_random_programs_match_the_interpreter(data: st.DataObject, slots: int, seed: int) -> None:
    """Emitted and run on the cleartext backend, any program equals quill.interp, and the
    depth it reaches is its static ct*ct depth."""
    program = data.draw(programs(slots=slots, max_instrs=10))
    assume(emittable(program, slots))
    result = run_cleartext(ProgramSpec(program, slots), program=program, seed=seed)
    assert result.ok, result.summary()
    assert result.ct_ct_depth_used == ct_ct_depth(program)


def _unlowered_run(program: Program, slots: int) -> None:
    """Run ``program`` emitted as written: no relinearization placed."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(planning, "place_relinearizations", lambda p: p)
        module = emitted_module(program, ProgramSpec(program, slots), cleartext_backend=True)
    assert "Relinearize(" not in str(module.__doc__)  # the docstring shows what runs
    spec = ProgramSpec(program, slots)
    session = Session([module])
    _, mismatches = session.check(module, spec, spec.random_inputs(np.random.default_rng(0)))
    assert not mismatches


# Uses of a ct*ct product q, some needing a relinearization first (quill.relin's rules).
# A use that needs one is relinearized after it, so that only its own rule can catch it.
TAILS = {
    "return it": "",
    "negate, return": "  u = neg(q)\n",
    "add a linear value": "  w = add(q, {x})\n  u = relin(w)\n",
    "add a plaintext": "  w = add(q, {pt})\n  u = relin(w)\n",
    "multiply by a plaintext": "  w = mul(q, {pt})\n  u = relin(w)\n",
    "multiply again": "  w = mul(q, {x})\n  u = relin(w)\n",
    "rotate": "  w = rot(q, 1)\n  u = relin(w)\n",
    "relinearize": "  u = relin(q)\n",
    "sum products lazily": "  q2 = mul({x}, {x})\n  w = sub(q, q2)\n  u = relin(w)\n",
    "relinearize, then add": "  r = relin(q)\n  u = add(r, {x})\n",
}


@st.composite
def product_uses(draw: st.DrawFn) -> Program:
    """A random program whose result is multiplied and then used as one of :data:`TAILS`."""
    base = draw(programs(slots=8, max_instrs=4))
    kinds = base.kinds()
    cts = [v for v, k in kinds.items() if k is Kind.CT]
    pts = [v for v, k in kinds.items() if k is Kind.PT] or ["one"]
    tail = TAILS[draw(st.sampled_from(sorted(TAILS)))]
    x, y, pt = draw(st.sampled_from(cts)), draw(st.sampled_from(cts)), draw(st.sampled_from(pts))
    body = format_program(base).rsplit("  return", 1)[0].replace("{", "{\n  one = const(1)", 1)
    body += f"  q = mul({x}, {y})\n" + tail.format(x=x, pt=pt)
    result = "u" if tail else "q"
    renamed = {"q", "q2", "w", "r", "u", "one"} & set(kinds)
    assume(not renamed)  # the tail's names are fresh
    return parse_program(body + f"  return {result}\n}}\n")


@pytest.mark.slow
@MANY
@given(program=programs(slots=8, max_instrs=8) | product_uses())
def test_the_fake_fails_a_kernel_exactly_when_relinearization_is_needed(program: Program) -> None:
    """Emitted without quill.relin's placement, a program runs on the cleartext backend iff
    the placement would add nothing: the fake and quill.relin agree on every rule."""
    assume(emittable(program, 8))
    needed = needs_relinearization(eliminate_dead_code(program))
    if needed:
        with pytest.raises(CleartextError, match="3-element"):
            _unlowered_run(program, 8)
    else:
        _unlowered_run(program, 8)


SUITE = sorted(p.stem for p in KERNELS.glob("*.spec"))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["published", "baselines", "results"])
@pytest.mark.parametrize("name", SUITE)
def test_suite_kernels_run_on_the_cleartext_backend(kind: str, name: str) -> None:
    """Every kernel of the suite, as emitted (relinearizations placed, rotations hoisted
    where the cost table says so): the fake accepts it, it computes its spec, and the depth
    measured is the static one (the largest GetNoiseScaleDeg() seen would say 1 for the
    synthesized polynomial regression, whose depth is 2)."""
    if kind == "results":
        result = json.loads((KERNELS / "results" / f"{name}.json").read_text())
        program = parse_program(result["program"])
    else:
        program = load_program(KERNELS / kind / f"{name}.quill")
    run = run_cleartext(load_spec(KERNELS / f"{name}.spec"), program=program, seed=5)
    assert run.ok, run.summary()
    assert run.ct_ct_depth_used == ct_ct_depth(program)


def test_depth_used_follows_the_data_flow_on_the_cleartext_backend() -> None:
    spec = ProgramSpec(DEEPER, 8)
    module = emitted_module(DEEPER, spec, cleartext_backend=True)
    session = Session([module])
    args = session.arguments(module, spec.random_inputs(np.random.default_rng(0)))
    probe = DepthProbe(session.cc)
    out = module.evaluate(probe, **args)
    assert out.GetNoiseScaleDeg() - 1 == 0  # as OpenFHE: y = b + q keeps b's degree
    assert probe.depth == 2 == probe.depth_of(out) == ct_ct_depth(DEEPER)
    assert run_cleartext(spec, program=DEEPER).ct_ct_depth_used == 2
