"""The carriers Quill values are computed in. Stated once; every evaluator picks one.

* A :class:`ScalarRing` holds single slot values: exact integers (:class:`IntRing`), Z_T
  (:class:`ModTRing`), integers mod 2^w (:class:`ModPow2Ring`), polynomials
  (:class:`quill.poly.PolyRing`), or abstract values such as a coefficient bound
  (:class:`NormRing`).
* A :class:`SlotAlgebra` holds whole slot vectors and adds rotation: numpy vectors mod T
  (:class:`ModT`) or mod 2^w (:class:`ModPow2`).

The op table (:mod:`quill.ops`) writes each op's semantics once against these protocols.
"""

from __future__ import annotations

from typing import Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from quill.slots import T

V = TypeVar("V")
Slots = npt.NDArray[np.int64]


class ScalarRing(Protocol[V]):
    """Arithmetic on single slot values."""

    def const(self, c: int) -> V: ...
    def add(self, a: V, b: V) -> V: ...
    def sub(self, a: V, b: V) -> V: ...
    def mul(self, a: V, b: V) -> V: ...
    def neg(self, a: V) -> V: ...


class SlotAlgebra(Protocol[V]):
    """Slot-wise arithmetic and cyclic rotation on some carrier of slot vectors."""

    def add(self, a: V, b: V) -> V: ...
    def sub(self, a: V, b: V) -> V: ...
    def mul(self, a: V, b: V) -> V: ...
    def neg(self, a: V) -> V: ...
    def rot(self, a: V, k: int) -> V:
        """Left-rotate: ``out[i] = a[(i + k) mod n]`` (see :mod:`quill.slots`)."""
        ...


class IntRing:
    """Exact integers: the spec's reference before any reduction."""

    def const(self, c: int) -> int:
        return c

    def add(self, a: int, b: int) -> int:
        return a + b

    def sub(self, a: int, b: int) -> int:
        return a - b

    def mul(self, a: int, b: int) -> int:
        return a * b

    def neg(self, a: int) -> int:
        return -a


class ModTRing:
    """Integers mod T in [0, T): what a BFV slot holds."""

    def const(self, c: int) -> int:
        return c % T

    def add(self, a: int, b: int) -> int:
        return (a + b) % T

    def sub(self, a: int, b: int) -> int:
        return (a - b) % T

    def mul(self, a: int, b: int) -> int:
        return (a * b) % T

    def neg(self, a: int) -> int:
        return -a % T


class ModPow2Ring:
    """Integers mod 2^width: the synthesizer's narrow example arithmetic."""

    def __init__(self, width: int) -> None:
        self.mask = (1 << width) - 1

    def const(self, c: int) -> int:
        return c & self.mask

    def add(self, a: int, b: int) -> int:
        return (a + b) & self.mask

    def sub(self, a: int, b: int) -> int:
        return (a - b) & self.mask

    def mul(self, a: int, b: int) -> int:
        return (a * b) & self.mask

    def neg(self, a: int) -> int:
        return -a & self.mask


class NormRing:
    """Upper bounds on the L1 norm of integer polynomials: ``|p + q| <= |p| + |q|`` and
    ``|p * q| <= |p| * |q|``. Evaluating a program here bounds the integer coefficients it
    can build (the synthesizer's soundness argument rests on it)."""

    def const(self, c: int) -> int:
        return abs(c)

    def add(self, a: int, b: int) -> int:
        return a + b

    def sub(self, a: int, b: int) -> int:
        return a + b

    def mul(self, a: int, b: int) -> int:
        return a * b

    def neg(self, a: int) -> int:
        return a


class ModT:
    """Slot vectors as int64 numpy arrays with entries in [0, T)."""

    def add(self, a: Slots, b: Slots) -> Slots:
        return (a + b) % T

    def sub(self, a: Slots, b: Slots) -> Slots:
        return (a - b) % T

    def mul(self, a: Slots, b: Slots) -> Slots:
        return (a * b) % T  # < 2^34: no int64 overflow

    def neg(self, a: Slots) -> Slots:
        return (-a) % T

    def rot(self, a: Slots, k: int) -> Slots:
        return np.roll(a, -k)  # out[i] = a[(i + k) mod n], see quill.slots


class ModPow2:
    """Slot vectors mod 2^width (width <= 31 keeps products inside int64)."""

    def __init__(self, width: int) -> None:
        if not 1 <= width <= 31:
            raise ValueError(f"width must be 1..31, got {width}")
        self.mask = (1 << width) - 1

    def add(self, a: Slots, b: Slots) -> Slots:
        return (a + b) & self.mask

    def sub(self, a: Slots, b: Slots) -> Slots:
        return (a - b) & self.mask

    def mul(self, a: Slots, b: Slots) -> Slots:
        return (a * b) & self.mask

    def neg(self, a: Slots) -> Slots:
        return (-a) & self.mask

    def rot(self, a: Slots, k: int) -> Slots:
        return np.roll(a, -k)
