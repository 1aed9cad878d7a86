"""The exact noise of an OpenFHE BFV ciphertext, and inputs that make noise grow the most.

OpenFHE has no noise API for BFV, but its JSON serialization exposes every RNS tower of a
ciphertext and of the secret key. :class:`RawDecryptor` computes ``c0 + c1 s (+ c2 s^2)``
mod Q in coefficient form from them, and the invariant noise ``v = t d / Q - round(t d /
Q)`` of every coefficient: decryption is correct iff every ``|v| < 1/2``. It reports
log2 |e| with ``e = v Q / t``, the quantity :mod:`quill.noise` models. (Research run on
openfhe 1.6.1: over 27 parameter sets and about 300 chains, "budget > 0" agreed with
OpenFHE's Decrypt every time.) Pure Python: 0.1 s at N = 4096, about a second at 16384.

OpenFHE's evaluation format stores slot ``i`` of a tower as ``a(psi^(2 brv(i) + 1))``
(``brv``: bit reversal; ``psi`` the tower's 2N-th root of unity, in the context's JSON).

:func:`worst_slots` gives slot values whose plaintext polynomial has every coefficient at
+-(t-1)/2, the largest a plaintext can have: the inputs under which a ct*pt or ct*ct
multiply grows noise the most (random slot values give coefficients about half as large on
average). Packed slot ``j`` of the first row holds the polynomial at ``w^(5^j)`` and of the
second at ``w^(-5^j)``, for a 2N-th root of unity ``w`` mod t that :func:`packing_root`
reads back from one encryption.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import openfhe

from quill.slots import T


def _brv(i: int, bits: int) -> int:
    return int(format(i, f"0{bits}b")[::-1], 2) if bits else 0


def _ntt_cyclic(a: list[int], w: int, q: int) -> list[int]:
    """``A_k = sum_j a_j w^(jk) mod q``, natural order in and out (iterative radix 2)."""
    n = len(a)
    bits = n.bit_length() - 1
    a = [a[_brv(i, bits)] for i in range(n)]
    m = 2
    while m <= n:
        wm = pow(w, n // m, q)
        half = m // 2
        twiddles = [1] * half
        for j in range(1, half):
            twiddles[j] = twiddles[j - 1] * wm % q
        for k in range(0, n, m):
            for j in range(half):
                u, v = a[k + j], a[k + j + half] * twiddles[j] % q
                a[k + j], a[k + j + half] = (u + v) % q, (u - v) % q
        m *= 2
    return a


def to_coefficients(values: list[int], q: int, psi: int) -> list[int]:
    """One tower in OpenFHE's evaluation format back to coefficients mod q."""
    n = len(values)
    bits = n.bit_length() - 1
    natural = [0] * n
    for i, v in enumerate(values):
        natural[_brv(i, bits)] = v
    b = _ntt_cyclic(natural, pow(psi * psi % q, -1, q), q)  # n a_j psi^j
    scale, psi_inv, out = pow(n, -1, q), pow(psi, -1, q), []
    for bj in b:
        out.append(bj * scale % q)
        scale = scale * psi_inv % q
    return out


def to_evaluation(coeffs: list[int], q: int, psi: int) -> list[int]:
    """One tower's coefficients mod q in OpenFHE's evaluation format."""
    n = len(coeffs)
    bits = n.bit_length() - 1
    twisted, power = [], 1
    for c in coeffs:
        twisted.append(c * power % q)
        power = power * psi % q
    spectrum = _ntt_cyclic(twisted, psi * psi % q, q)
    return [spectrum[_brv(i, bits)] for i in range(n)]


def _towers(poly: dict[str, Any]) -> list[tuple[list[int], int, int]]:
    """``[(values, modulus, format)]`` of one serialized DCRTPoly (format 0: evaluation)."""
    out = []
    for tower in poly["v"]:
        data = tower["v"]["ptr_wrapper"]["data"]
        out.append(([int(x) for x in data["v"]], int(data["m"]["v"]), int(tower["f"])))
    return out


def _roots(cc: Any) -> dict[int, int]:
    """Each tower's modulus and its 2N-th root of unity, from the context's JSON."""
    tree = json.loads(openfhe.Serialize(cc, openfhe.JSON))
    params = tree["value0"]["ptr_wrapper"]["data"]["cc"]["ptr_wrapper"]["data"]["value0"]
    towers = params["value0"]["value0"]["elp"]["ptr_wrapper"]["data"]["p"]
    roots = {}
    for tower in towers:
        data = tower["ptr_wrapper"]["data"]["value0"]
        roots[int(data["cm"]["v"])] = int(data["ru"]["v"])
    return roots


@dataclass(frozen=True)
class Noise:
    """A ciphertext's noise: log2 |e| and what decryption allows."""

    bits: float  # log2 of the largest |e|
    capacity: float  # log2 Q - log2 t - 1: decryption fails at this many bits

    @property
    def budget(self) -> float:
        """Bits left before decryption fails (negative: it fails)."""
        return self.capacity - self.bits


class RawDecryptor:
    """Decrypts a ciphertext of ``cc`` under ``secret_key`` to its raw polynomial mod Q."""

    def __init__(self, cc: Any, secret_key: Any) -> None:
        self.cc = cc
        self.roots = _roots(cc)
        tree = json.loads(openfhe.Serialize(secret_key, openfhe.JSON))
        poly = tree["value0"]["ptr_wrapper"]["data"]["s"]
        if int(poly["f"]) != 0:
            raise ValueError("the secret key is not in evaluation format")
        self.secret = {q: values for values, q, _ in _towers(poly)}
        self.t = int(cc.GetPlaintextModulus())

    def raw(self, ciphertext: Any) -> tuple[list[int], int]:
        """``(d, Q)``: the coefficients of c0 + c1 s + c2 s^2 ... mod Q."""
        tree = json.loads(openfhe.Serialize(ciphertext, openfhe.JSON))
        elements = [_towers(e) for e in tree["value0"]["ptr_wrapper"]["data"]["v"]]
        total, residues = 1, []
        for index in range(len(elements[0])):
            q = elements[0][index][1]
            s, power = self.secret[q], [1] * len(self.secret[q])
            acc = [0] * len(s)
            for k, element in enumerate(elements):
                values, _, fmt = element[index]
                if fmt != 0:  # EvalMultNoRelin leaves its result in coefficient format
                    values = to_evaluation(values, q, self.roots[q])
                if k:
                    power = [x * y % q for x, y in zip(power, s, strict=True)]
                acc = [(a + v * p) % q for a, v, p in zip(acc, values, power, strict=True)]
            residues.append((to_coefficients(acc, q, self.roots[q]), q))
            total *= q
        coeffs = [0] * len(residues[0][0])
        for values, q in residues:  # CRT
            rest = total // q
            lift = rest * pow(rest, -1, q)
            coeffs = [c + v * lift for c, v in zip(coeffs, values, strict=True)]
        return [c % total for c in coeffs], total

    def plaintext(self, ciphertext: Any) -> list[int]:
        """The plaintext polynomial's coefficients in [0, t): round(t d / Q) mod t."""
        coeffs, q = self.raw(ciphertext)
        return [(self.t * d + q // 2) // q % self.t for d in coeffs]

    def noise(self, ciphertext: Any) -> Noise:
        """The ciphertext's noise (:class:`Noise`)."""
        coeffs, q = self.raw(ciphertext)
        worst = 0
        for d in coeffs:
            scaled = self.t * d
            nearest = (scaled + q // 2) // q
            worst = max(worst, abs(scaled - nearest * q))  # |v| * Q
        capacity = math.log2(q) - math.log2(self.t) - 1
        return Noise(math.log2(worst / self.t) if worst else 0.0, capacity)


def packing_root(cc: Any, keys: Any, decryptor: RawDecryptor) -> int:
    """The 2N-th root of unity mod t at which OpenFHE's packed slot 0 evaluates the
    plaintext polynomial: the one slot 0 of a unit vector's polynomial is interpolated at."""
    unit = [1] + [0] * (cc.GetRingDimension() - 1)
    c = decryptor.plaintext(cc.Encrypt(keys.publicKey, cc.MakePackedPlaintext(unit)))
    return c[0] * pow(c[1], -1, T) % T  # c_j = w^(-j) / N


def slot_exponents(ring_dim: int) -> npt.NDArray[np.int64]:
    """For every packed slot, the power of the packing root it evaluates the polynomial at."""
    order, row = 2 * ring_dim, ring_dim // 2
    powers = np.array([pow(5, j, order) for j in range(row)], dtype=np.int64)
    return np.concatenate([powers, (order - powers) % order])


def worst_slots(ring_dim: int, root: int, rng: np.random.Generator) -> npt.NDArray[np.int64]:
    """Slot values (all N, in [0, t)) whose polynomial has every coefficient +-(t-1)/2, the
    signs drawn from ``rng``."""
    order = 2 * ring_dim
    half = (T - 1) // 2
    coeffs = rng.choice(np.array([half, T - half], dtype=np.int64), ring_dim)
    table = np.ones(order, dtype=np.int64)
    for m in range(1, order):
        table[m] = table[m - 1] * root % T
    exponents = slot_exponents(ring_dim)
    k = np.arange(ring_dim, dtype=np.int64)
    out = np.empty(ring_dim, dtype=np.int64)
    chunk = max(1, (1 << 22) // ring_dim)
    for start in range(0, ring_dim, chunk):
        e = exponents[start : start + chunk]
        terms = table[(e[:, None] * k[None, :]) % order] * coeffs[None, :]
        out[start : start + chunk] = (terms % T).sum(axis=1) % T
    return out
