"""The BFV parameter sets a kernel may run with, each exactly as OpenFHE builds it.

A :class:`ParameterSet` fixes everything the emitted module passes to OpenFHE (ring
dimension, the multiplicative depth OpenFHE sizes the modulus chain from, the bits of each
RNS tower, the key-switching digit size; BV key switching, the HPSPOVERQ multiplication,
t = 65537, 128-bit classic security), the modulus Q that OpenFHE 1.6.1 builds from it
(exactly: the emitted module refuses a context with another Q), and the noise model's
constants for it (:class:`NoiseConstants`, used by :mod:`quill.noise`).

Why these sets (measured on openfhe-python 1.6.1, ``shared/reference/openfhe-bfv.md`` and the
research run behind it): OpenFHE's own choice for a multiplicative depth (N = 8192 and 60-bit
towers for depth 1) is safe but slow. With a key-switching digit size, a smaller ring holds
the same kernels at 128-bit classic security, and every op gets 1.5 to 4x faster; with a
smaller digit, key switching adds less noise but costs more. The list offers, per ring, the
cheapest sets the research found correct, plus deeper ones; the compiler picks per kernel
the cheapest that its noise analysis proves safe (:func:`quill.noise.parameters`).

* HPSPOVERQ multiplication: OpenFHE's default (HPSPOVERQLEVELED) drops towers before a
  ct*ct multiply by its own noise estimate, which ignores the key-switching noise of a
  digit-0 set: a relinearized product squared again gained 60 bits of noise instead of 28
  (measured). HPSPOVERQ keeps every tower, grows noise as the model says, and was 8 to 10%
  faster on every set measured.
* Not offered: N = 4096 with 2x50-bit towers and digit 25 (as fast as 2x54 / digit 27,
  with less capacity), N = 4096 with OpenFHE's default digit (a 60-bit digit: every rotation
  decrypts wrongly), HYBRID key switching (slower here, and refused at N = 4096 beyond
  depth 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from quill.slots import T

SECURITY = "HEStd_128_classic"
"""The security level every set is built and checked at."""

MAX_LOG2_Q: dict[int, int] = {1024: 27, 2048: 54, 4096: 109, 8192: 218, 16384: 438, 32768: 881}
"""The largest log2 Q the HE standard allows at 128-bit classic security (ternary secrets),
by ring dimension; OpenFHE refuses a BV context above it."""


@dataclass(frozen=True)
class NoiseConstants:
    """The noise model's constants for one parameter set, in bits of log2 |e|, where e is
    the noise polynomial's largest coefficient (decryption is correct while
    log2 |e| < log2 Q - log2 t - 1). Each is an upper bound of what ``eval/noise_probe.py
    --calibrate`` measured with worst-case inputs (see :mod:`quill.noise`)."""

    fresh: float  # a fresh encryption
    key_switch: float  # what one key switch adds (rotation, relinearization)
    mul_pt: float  # growth of a ct*pt multiply, added to its operand's noise
    mul_cc: float  # growth of a ct*ct multiply, added to its operands' summed noise


@dataclass(frozen=True)
class ParameterSet:
    """One BFV parameter set (see the module docstring)."""

    name: str
    ring_dim: int
    mult_depth: int  # passed to SetMultiplicativeDepth: OpenFHE sizes the chain from it
    scaling_mod_size: int  # bits of each RNS tower
    digit_size: int  # key-switching digit in bits; 0: one digit per tower
    towers: tuple[int, ...]  # the RNS primes OpenFHE 1.6.1 picks; Q is their product
    noise: NoiseConstants
    key_switching: str = "BV"  # an openfhe.KeySwitchTechnique name
    multiplication: str = "HPSPOVERQ"  # an openfhe.MultiplicationTechnique name

    @property
    def modulus(self) -> int:
        """Q, exactly as OpenFHE builds it."""
        return math.prod(self.towers)

    @property
    def log2_q(self) -> float:
        return math.log2(self.modulus)

    @property
    def slots(self) -> int:
        """Slots in a row: a kernel on n slots needs n <= N/2."""
        return self.ring_dim // 2

    @property
    def capacity_bits(self) -> float:
        """The noise (log2 |e|) at which decryption fails: log2 Q - log2 t - 1."""
        return self.log2_q - math.log2(T) - 1

    def describe(self) -> str:
        """A one-line summary, e.g. for an emitted module's docstring."""
        digit = f"digit size {self.digit_size}" if self.digit_size else "one digit per tower"
        return (
            f"{self.name}: N = {self.ring_dim}, log2 Q = {self.log2_q:.0f} "
            f"({len(self.towers)} x {self.scaling_mod_size}-bit towers), {self.key_switching} "
            f"key switching with {digit}, {self.multiplication} multiplication, "
            f"SetMultiplicativeDepth({self.mult_depth})"
        )


_P54 = (18014398509309953, 18014398509293569)
_P60 = (1152921504606830593, 1152921504606748673, 1152921504606683137)
_P54_8K = (18014398508400641, 18014398508138497, 18014398507892737, 18014398507794433)
_P60_16K = (1152921504606748673, 1152921504606683137, 1152921504606584833,
            1152921504605962241, 1152921504604979201)  # fmt: skip

# Towers: what OpenFHE 1.6.1 builds (tests/test_params.py builds every set and compares).
# Noise constants (fresh, key switch, ct*pt, ct*ct): eval/noise_probe.py --calibrate.
SETS: tuple[ParameterSet, ...] = tuple(
    ParameterSet(name, ring, depth, tower, digit, primes, NoiseConstants(*noise))
    for name, ring, depth, tower, digit, primes, noise in (
        ("n2048_q50_w10", 2048, 0, 50, 10, (1125899906826241,), (11.0, 18.0, 21.5, 24.0)),
        ("n4096_q60_w20", 4096, 0, 60, 20, _P60[:1], (11.0, 28.0, 21.5, 27.0)),
        ("n4096_q108_w0", 4096, 1, 54, 0, _P54, (11.5, 62.0, 27.0, 27.5)),
        ("n4096_q108_w27", 4096, 1, 54, 27, _P54, (11.0, 35.5, 27.5, 28.0)),
        ("n4096_q108_w18", 4096, 1, 54, 18, _P54, (11.0, 26.5, 27.0, 28.0)),
        ("n4096_q108_w12", 4096, 2, 36, 12, (68719403009, 68719230977, 68719206401),
         (11.0, 21.0, 27.5, 28.0)),
        ("n8192_q120_w0", 8192, 1, 60, 0, _P60[:2], (11.5, 68.5, 28.0, 28.5)),
        ("n8192_q120_w30", 8192, 1, 60, 30, _P60[:2], (12.0, 39.0, 28.0, 28.5)),
        ("n8192_q180_w0", 8192, 2, 60, 0, _P60, (11.5, 68.5, 27.5, 28.5)),
        ("n8192_q162_w27", 8192, 4, 54, 27, _P54_8K[:3], (11.5, 36.0, 28.0, 29.0)),
        ("n8192_q216_w27", 8192, 5, 54, 27, _P54_8K, (11.5, 36.5, 28.5, 29.0)),
        ("n16384_q240_w0", 16384, 4, 60, 0, _P60_16K[:4], (12.0, 69.5, 29.0, 29.0)),
        ("n16384_q300_w0", 16384, 6, 60, 0, _P60_16K, (12.0, 69.5, 29.0, 29.0)),
    )
)  # fmt: skip
"""Every set the compiler may choose, by ring dimension, then capacity."""

LARGEST_ROW = max(s.slots for s in SETS)
"""The most slots a kernel may use: a row of the largest ring of :data:`SETS`. Larger data
is tiled by the application (one kernel call per block)."""

BY_NAME: dict[str, ParameterSet] = {s.name: s for s in SETS}
assert len(BY_NAME) == len(SETS), "set names are unique"


def by_name(name: str) -> ParameterSet:
    """The set called ``name``; KeyError listing the sets when there is none."""
    if name not in BY_NAME:
        raise KeyError(f"no parameter set {name!r}; the sets are {', '.join(BY_NAME)}")
    return BY_NAME[name]


LEGACY_RING: dict[int, str] = {
    2048: "n2048_q50_w10",
    4096: "n4096_q108_w0",
    8192: "n8192_q180_w0",
    16384: "n16384_q240_w0",
}
"""What a bare ring dimension stands for, to callers that price by ring dimension (they
predate parameter sets): at 8192 and 16384 the depth-2 and depth-4 contexts OpenFHE builds
by default, at which the old per-ring cost table was measured; at the smaller rings the set
with the cheapest key switching."""


def at_ring(ring_dim: int) -> ParameterSet:
    """The set a bare ring dimension stands for (:data:`LEGACY_RING`)."""
    if ring_dim not in LEGACY_RING:
        raise ValueError(
            f"no parameter set stands for ring dimension {ring_dim}: price at a ParameterSet "
            "(quill.noise.parameters or quill.noise.for_depth)"
        )
    return BY_NAME[LEGACY_RING[ring_dim]]
