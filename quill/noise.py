"""Multiplicative depth, a noise estimate per instruction, and the BFV parameters a program
needs.

BFV has no noise-budget API in OpenFHE (``openfhe-bfv.md``), so the estimate is an
empirical model in bits of noise, fitted to measurements with t = 65537 at 128-bit
security: the longest chains of ct*ct squarings and of ct*pt multiplies that still decrypt
correctly at each configured depth, and the failure of a rotation at depth 0. Every rule
lives in :data:`GROWTH`, keyed by the ``noise`` column of the op table (:mod:`quill.ops`).

Decryption is correct while ``noise + DECRYPT_MARGIN <= log2 Q``. The configured depth is
the smallest one whose ``log2 Q`` leaves that much room; it fixes the ring dimension, and so
the price of every instruction (:mod:`quill.cost`).

Provenance (``eval/noise_probe.py``, OpenFHE 1.6.1, n = 16 slots, random inputs): the
longest chain that decrypted correctly at each configured depth, measured / accepted by
this model. The model is never more optimistic than OpenFHE, and every chain it accepts
decrypts correctly at the depth :func:`parameters` picks. Depth 0 cannot even rotate.

==========================================  =======  =======  =======  =======
chain (length L)                            depth 1  depth 2  depth 3  depth 4
==========================================  =======  =======  =======  =======
ct*ct squarings                             1 / 1    3 / 2    3 / 3    5 / 4
ct*pt by a random plaintext                 4 / 3    8 / 5    8 / 5    11 / 7
ct*pt by a 0/1 mask                         4 / 3    7 / 5    7 / 5    11 / 7
rotate, then ct*pt                          2 / 1    5 / 3    5 / 3    9 / 5
L rounds of 16 ct*ct products summed        1 / 1    3 / 2    3 / 2    5 / 3
L rounds of 16 ct*pt products summed        1 / 1    4 / 2    4 / 2    7 / 3
==========================================  =======  =======  =======  =======
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from quill.ir import Program
from quill.ops import OPS, Kind
from quill.relin import place_relinearizations
from quill.slots import T

FRESH_BITS = 5.0
"""Noise of a fresh encryption."""

MUL_BITS = 30.0
"""Growth of one multiply, ct*ct or ct*pt alike: roughly log2(t * N) with N = 8192. A 0/1
mask costs as much as a random plaintext (measured), so constants get no discount."""

RELIN_FLOOR_BITS = 50.0
"""Relinearization adds key-switching noise: a relinearized product has at least this much
noise, plus one multiply's growth."""

KEYSWITCH_FLOOR_BITS = 45.0
"""A rotation's key switch leaves at least this much noise (depth 0, log2 Q = 60, cannot
decrypt a rotated ciphertext; depth 1 can)."""

DECRYPT_MARGIN = T.bit_length() + 1.0
"""Noise must stay this many bits below Q for the plaintext (log2 t bits) to survive."""

LOG2_Q: dict[int, int] = {1: 120, 2: 180, 3: 180, 4: 240, 5: 240, 6: 300}
"""log2 Q OpenFHE picks for BFV, t = 65537, HEStd_128_classic, by multiplicative depth."""

RING_DIM: dict[int, int] = {1: 8192, 2: 8192, 3: 8192, 4: 16384, 5: 16384, 6: 16384}
"""Ring dimension OpenFHE picks for those parameters (depth 0 gives 4096 but cannot rotate)."""

GROWTH: dict[str, Callable[[list[float]], float]] = {
    "none": lambda a: a[0],
    "add": lambda a: max(a) + 1.0,
    "mul_pt": lambda a: a[0] + MUL_BITS,
    "mul_cc": lambda a: max(a) + MUL_BITS,
    "relin": lambda a: max(a[0], RELIN_FLOOR_BITS + MUL_BITS),
    "rotate": lambda a: max(a[0], KEYSWITCH_FLOOR_BITS),
    # EvalSum: rotations and additions; its noise was measured within a bit of the tree's.
    "sum": lambda a: max(a[0], KEYSWITCH_FLOOR_BITS) + 5.0,
}
"""Noise of an instruction's result from the noise of its ciphertext operands."""


def ct_ct_depth(program: Program) -> int:
    """The static ct*ct multiplicative depth: what ``GetNoiseScaleDeg() - 1`` reaches."""
    depth = {p.name: 0 for p in program.params}
    for ins in program.body:
        below = max((depth[a] for a in ins.args if a in depth), default=0)
        depth[ins.dest] = below + (1 if OPS[ins.opcode].ct_ct_mult else 0)
    return depth[program.result]


def noise_bits(program: Program) -> dict[str, float]:
    """Estimated noise, in bits, of every ciphertext the program computes (relinearized
    as the backend emits it, :func:`quill.relin.place_relinearizations`)."""
    program = place_relinearizations(program)
    kinds = program.kinds()
    noise = {p.name: FRESH_BITS for p in program.params}
    for ins in program.body:
        operands = [noise[a] for a in ins.args if kinds[a] is Kind.CT]
        noise[ins.dest] = GROWTH[OPS[ins.opcode].noise](operands)
    return noise


@dataclass(frozen=True)
class Parameters:
    """The BFV parameters a program needs."""

    mult_depth: int  # to pass to SetMultiplicativeDepth
    ring_dim: int
    log2_q: int
    noise_bits: float  # estimated noise of the result
    ct_ct_depth: int


class NoiseBudgetExceeded(ValueError):
    """The program needs more noise budget than the largest parameter set we model."""


def parameters(program: Program, slots: int = 1) -> Parameters:
    """The smallest BFV parameters under which ``program`` decrypts correctly.

    ``slots`` is the kernel's slot count n; a BFV row holds N/2 slots, so N >= 2n.
    """
    depth = ct_ct_depth(program)
    noise = max(noise_bits(program).values())
    for d in sorted(LOG2_Q):
        if d >= depth and noise + DECRYPT_MARGIN <= LOG2_Q[d]:
            return Parameters(d, max(RING_DIM[d], 2 * slots), LOG2_Q[d], noise, depth)
    raise NoiseBudgetExceeded(
        f"{program.name} needs about {noise + DECRYPT_MARGIN:.0f} bits of modulus, more than "
        f"the {max(LOG2_Q.values())} of multiplicative depth {max(LOG2_Q)}; "
        "reduce its multiplicative depth"
    )
