"""Constants of one value in every slot: the runtime packs them into all N slots, so their
plaintext polynomial is the constant itself, and a ct*pt multiply by c grows the noise by
log2 (c mod t) (:data:`quill.noise.CONST_MUL_BITS` above it), measured exactly; masks are
tiled across each row (each row may hold a tile of an application's data) and keep the
general ct*pt rule. The encrypted edge probes of the ``*_const``
patterns run in ``tests/test_noise_probe.py`` (every pattern, at the small sets)."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before openfhe loads (see test_backend.py)

import math
from typing import Any

import numpy as np
import pytest

from porcupine.backend.kernel_module import emitted_module
from porcupine.backend.noise_probe import primitives
from porcupine.backend.openfhe_run import Session
from porcupine.backend.options import EmitOptions
from porcupine.backend.planning import new_context
from porcupine.backend.program_spec import ProgramSpec
from porcupine.backend.rawnoise import RawDecryptor, packing_root, worst_slots
from quill.interp import interpret
from quill.noise import CONST_MUL_BITS, accepts, noise_bits, uniform_constants
from quill.params import by_name
from quill.parser import parse_program
from quill.slots import T

KERNEL = """kernel k(x: ct) {
  two = const(2)
  last = const(65536)
  mask = const([1, 0])
  a = mul(x, two)
  b = rot(a, 1)
  c = mul(b, mask)
  d = mul(c, last)
  y = add(d, two)
  return y
}
"""


def test_uniform_constants_are_read_mod_t() -> None:
    program = parse_program(KERNEL)
    assert uniform_constants(program) == {"two": 2, "last": T - 1}
    noise = noise_bits(program, by_name("n4096_q108_w27"))
    c = by_name("n4096_q108_w27").noise
    assert noise["a"] == pytest.approx(c.fresh + 1 + CONST_MUL_BITS)
    assert noise["c"] == pytest.approx(noise["b"] + c.mul_pt)  # a mask: a general plaintext
    assert noise["d"] == pytest.approx(noise["c"] + math.log2(T - 1) + CONST_MUL_BITS)


@pytest.mark.openfhe
@pytest.mark.parametrize("cleartext", [False, True], ids=["openfhe", "cleartext"])
def test_uniform_constants_fill_both_rows_masks_tile_each_row(cleartext: bool) -> None:
    program = parse_program(KERNEL)
    s = by_name("n2048_q50_w10")  # the packing only; the kernel is not run
    module = emitted_module(
        program, ProgramSpec(program, 8), EmitOptions(param_set=s), cleartext_backend=cleartext
    )
    session = Session([module])
    packed = module._constants(session.cc)  # type: ignore[attr-defined]
    n = s.ring_dim

    def slots(plaintext: Any) -> list[int]:
        plaintext.SetLength(n)
        return [int(v) % T for v in plaintext.GetPackedValue()[:n]]

    assert slots(packed["two"]) == [2] * n
    assert slots(packed["last"]) == [T - 1] * n
    assert slots(packed["mask"]) == [1, 0] * (n // 2)


@pytest.mark.openfhe
@pytest.mark.parametrize("cleartext", [False, True], ids=["openfhe", "cleartext"])
def test_the_second_row_never_reaches_the_slots_that_matter(cleartext: bool) -> None:
    # Inputs with arbitrary values in the second row too: the first row's slots are the
    # kernel's, whatever the constants put in the second.
    program = parse_program(KERNEL)
    s = by_name("n4096_q108_w27")  # the cheapest set the model accepts the kernel on
    assert accepts(s, program, 8)
    module = emitted_module(
        program, ProgramSpec(program, 8), EmitOptions(param_set=s), cleartext_backend=cleartext
    )
    session = Session([module])
    cc, keys = session.cc, session.keys
    rng = np.random.default_rng(3)
    x = rng.integers(0, T, 8)
    row = np.tile(x, s.slots // 8)
    full = np.concatenate([row, rng.integers(0, T, s.slots)])
    ct = cc.Encrypt(keys.publicKey, cc.MakePackedPlaintext([int(v) for v in full]))
    got = module.decode_slots(cc, keys, module.evaluate(cc, x=ct))
    assert np.array_equal(got, np.asarray(interpret(program, {"x": x})) % T)
    assert np.array_equal(
        got, module.decode_slots(cc, keys, module.kernel(cc, x=module.encrypt(cc, keys, "x", x)))
    )


@pytest.mark.slow
@pytest.mark.openfhe
@pytest.mark.parametrize("name", ["n2048_q50_w10", "n4096_q108_w27"])
def test_a_uniform_constant_in_every_slot_grows_noise_by_its_log(name: str) -> None:
    s = by_name(name)
    assert primitives(s, seed=5).mul_const <= CONST_MUL_BITS
    # Packed into one row only, 16 is not the constant polynomial 16 (measured: 11 bits of
    # growth instead of 4).
    cc: Any = new_context(s)
    keys = cc.KeyGen()
    decryptor = RawDecryptor(cc, keys.secretKey)
    values = worst_slots(s.ring_dim, packing_root(cc, keys, decryptor), np.random.default_rng(0))
    x = cc.Encrypt(keys.publicKey, cc.MakePackedPlaintext([int(v) for v in values]))
    before = decryptor.noise(x).bits
    one_row = decryptor.noise(cc.EvalMult(x, cc.MakePackedPlaintext([16] * s.slots))).bits
    every = decryptor.noise(cc.EvalMult(x, cc.MakePackedPlaintext([16] * s.ring_dim))).bits
    assert every - before <= 4 + CONST_MUL_BITS < one_row - before
