"""The slot model: what a slot index and a rotation mean. Stated here once.

A Quill value is a vector of ``n`` slots, ``n`` a power of two, with integer entries mod
``T = 65537``. Rotation is a cyclic *left* shift::

    rot(x, k)[i] == x[(i + k) mod n]        (k may be negative)

That is exactly what OpenFHE's ``EvalRotate(ct, k)`` does, provided the backend lays the
vector out tiled: BFV packs two rows of N/2 slots and rotates cyclically within each row, so
the backend repeats the n-slot vector N/2 / n times across each row (n divides N/2, both
powers of two). Any other layout (one copy padded with zeros) would make a rotation pull in
padding instead of wrapping, and the model would be wrong at the edges.
"""

from __future__ import annotations

T = 65537
"""The plaintext modulus. Prime, so Z_T is a field (exact verification relies on it)."""


def is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def rotated_index(i: int, k: int, n: int) -> int:
    """The slot of the input that lands in slot ``i`` after ``rot(., k)`` on ``n`` slots."""
    return (i + k) % n


def normalize_amount(k: int, n: int) -> int:
    """The rotation amount in ``(-n/2, n/2]`` equal to ``k`` mod ``n`` (same effect, and the
    smaller magnitude is the key OpenFHE would use)."""
    k %= n
    return k - n if k > n // 2 else k


def tile(values: list[int], row: int) -> list[int]:
    """Repeat an n-slot vector across a BFV row of ``row`` slots (n must divide row)."""
    n = len(values)
    if row % n:
        raise ValueError(f"{n} slots do not tile a row of {row}")
    return values * (row // n)
