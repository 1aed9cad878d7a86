"""Random spec TEXT, as a user writes it: the one source of the spec fuzzer's grammar pieces.

Every generator draws through a :class:`Draw` (two methods), so the same pieces back the
Hypothesis strategy of the tests (``tests/strategies.py``: a draw that Hypothesis records
and shrinks) and the seeded bench (``eval/spec_fuzz.py``: a :class:`RandomDraw` over
:class:`random.Random`). A :class:`GeneratedSpec` says whether the spec is meant to be
valid: the families cover elementwise polynomials (constants, zero and negative
coefficients, powers, factored forms, plaintext and ``bits``/ranged inputs), 1-D and 2-D
stencils with weights (borders by ``where``, cyclic ``mod`` indices or ``pad zero``),
reductions (``sum``, products of sums), stages, and the packing clauses (``packing with``,
``packing broadcast``), some of them on purpose ones that cannot hold (a located error is
the right answer there). Sizes stay small: the bench synthesizes each spec in seconds.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

X = TypeVar("X")


class Draw(Protocol):
    """Where the random choices come from."""

    def integer(self, lo: int, hi: int) -> int:
        """An integer in ``lo..hi``, both included."""
        ...

    def choice(self, options: Sequence[X]) -> X:
        """One of ``options`` (not empty)."""
        ...


class RandomDraw:
    """A :class:`Draw` over :class:`random.Random` (the bench: one seed, one sequence)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def integer(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)

    def choice(self, options: Sequence[X]) -> X:
        return options[self.rng.randrange(len(options))]


@dataclass(frozen=True)
class GeneratedSpec:
    """A spec's text, the family that wrote it, and whether it is meant to be valid (an
    invalid one must end in a located error, exit status 2)."""

    family: str
    text: str
    valid: bool = True


# --- formulas ----------------------------------------------------------------------------

COEFFICIENTS = (1, 1, 1, 2, 3, -1, -2, 0, 5, -4, 7, 16)
CONSTANTS = (1, 2, 3, 4, 5, 0, -1, -3, 7, 100)


def _coefficient(d: Draw, text: str, first: bool) -> str:
    """``coef * text`` joined as the user writes it: signs as subtraction or unary minus."""
    c = d.choice(COEFFICIENTS)
    body = text if c in (1, -1) else f"{abs(c)} * {text}"
    if c >= 0:
        return body if first else f" + {body}"
    if first:
        return d.choice([f"-{body}", f"({-abs(c)}) * {text}" if abs(c) != 1 else f"-{text}"])
    return d.choice([f" - {body}", f" + ({c}) * {text}" if c != -1 else f" - {text}"])


def _monomial(d: Draw, reads: Sequence[str], max_degree: int) -> str:
    """A product of reads (with powers), of degree at most ``max_degree``."""
    degree = d.integer(1, max_degree)
    factors: list[str] = []
    left = degree
    while left > 0:
        r = d.choice(reads)
        e = d.integer(1, min(left, 3))
        factors.append(r if e == 1 else f"{r}^{e}")
        left -= e
    return " * ".join(factors)


def polynomial(d: Draw, reads: Sequence[str], *, max_degree: int = 3, terms: int = 3) -> str:
    """A sum of 1..``terms`` monomials over ``reads`` with coefficients, maybe a constant;
    sometimes a product of two small sums (a factored form)."""
    if d.integer(0, 4) == 0:
        left = _linear(d, reads)
        right = _linear(d, reads)
        return f"({left}) * ({right})"
    out = ""
    for t in range(d.integer(1, terms)):
        out += _coefficient(d, _monomial(d, reads, max_degree), first=t == 0)
    if d.integer(0, 2) == 0:
        c = d.choice(CONSTANTS)
        out += f" + {c}" if c >= 0 else f" - {-c}"
    return out


def _linear(d: Draw, reads: Sequence[str]) -> str:
    out = ""
    for t in range(d.integer(1, 2)):
        out += _coefficient(d, d.choice(reads), first=t == 0)
    if d.integer(0, 1) == 0:
        out += f" + {d.integer(1, 5)}"
    return out


def _input_attrs(d: Draw) -> str:
    return d.choice(["", "", "", " bits", " in 0..255", " in -8..8"])


def _header(name: str, params: dict[str, int], slots: str) -> str:
    lines = [f"spec {name}", *(f"param {k} = {v}" for k, v in params.items()), f"slots {slots}"]
    return "\n".join(lines) + "\n"


# --- families ----------------------------------------------------------------------------


def elementwise(d: Draw) -> GeneratedSpec:
    """``y[k]`` a polynomial of ciphertext (and maybe plaintext) inputs at ``k``."""
    n = d.choice([1, 2, 4, 8])
    names = ["a", "b"][: d.integer(1, 2)]
    plain = d.integer(0, 2) == 0
    text = _header("elementwise", {"n": n}, "n")
    for x in names:
        text += f"input {x}: ct vector(n){_input_attrs(d)}\n"
    if plain:
        text += "input p: pt vector(n)\n"
    reads = [f"{x}[k]" for x in names] + (["p[k]"] if plain else [])
    formula = polynomial(d, reads)
    if not any(f"{x}[k]" in formula for x in names):
        formula = f"a[k] + {formula}" if "a" in names else f"{names[0]}[k] * ({formula})"
    where = ""
    if n > 1 and d.integer(0, 3) == 0:
        where = f"\n    where k < {d.integer(1, n - 1)}"
    text += f"output y[k]: vector(n) = {formula}{where}\n"
    return GeneratedSpec("elementwise", text)


def _taps(d: Draw, offsets: Sequence[X], most: int) -> list[X]:
    count = d.integer(2, most)
    chosen: list[X] = []
    for _ in range(count):
        o = d.choice(offsets)
        if o not in chosen:
            chosen.append(o)
    return chosen


def _shift(head: str, delta: int) -> str:
    return head if delta == 0 else f"{head} + {delta}" if delta > 0 else f"{head} - {-delta}"


def stencil1d(d: Draw) -> GeneratedSpec:
    """A weighted 1-D stencil; the border by ``where``, cyclic ``mod`` or ``pad zero``."""
    n = d.choice([8, 16])
    offsets = _taps(d, [-2, -1, 0, 1, 2, 3], 4)
    border = d.choice(["where", "mod", "pad"])
    weights_pt = d.integer(0, 4) == 0
    text = _header("stencil1d", {"n": n}, "n")
    text += f"input x: ct vector(n){' pad zero' if border == 'pad' else ''}{_input_attrs(d)}\n"
    if weights_pt:
        text += "input p: pt vector(n)\n"
    formula = ""
    for t, o in enumerate(offsets):
        index = (
            f"({_shift('k', o + n if o < 0 else o)}) mod n" if border == "mod" else _shift("k", o)
        )
        read = f"x[{index}]"
        if weights_pt and t == 0:
            read = f"p[k] * {read}"
        formula += _coefficient(d, read, first=t == 0)
    lo, hi = -min(min(offsets), 0), max(max(offsets), 0)
    where = ""
    if border == "where":
        bounds = [f"{lo} <= k" if lo else "", f"k < n - {hi}" if hi else ""]
        conds = ", ".join(b for b in bounds if b)
        where = f"\n    where {conds}" if conds else ""
    text += f"output y[k]: vector(n) = {formula}{where}\n"
    return GeneratedSpec("stencil1d", text)


def stencil2d(d: Draw) -> GeneratedSpec:
    """A weighted 2-D stencil on an image, with the same three borders."""
    h, w = d.choice([(4, 4), (4, 8), (8, 8)])
    offsets = _taps(d, [(di, dj) for di in (-1, 0, 1) for dj in (-1, 0, 1)], 5)
    border = d.choice(["where", "mod", "pad"])
    text = _header("stencil2d", {"w": w, "h": h}, "w * h")
    text += f"input x: ct image(h, w){' pad zero' if border == 'pad' else ''}{_input_attrs(d)}\n"
    formula = ""
    for t, (di, dj) in enumerate(offsets):
        if border == "mod":
            read = f"x[({_shift('i', di % h)}) mod h][({_shift('j', dj % w)}) mod w]"
        else:
            read = f"x[{_shift('i', di)}][{_shift('j', dj)}]"
        formula += _coefficient(d, read, first=t == 0)
    if d.integer(0, 4) == 0:
        formula = f"({formula})^2"
    where = ""
    if border == "where":
        conds = []
        for head, size, deltas in (
            ("i", "h", [o[0] for o in offsets]),
            ("j", "w", [o[1] for o in offsets]),
        ):
            lo, hi = -min(min(deltas), 0), max(max(deltas), 0)
            if lo:
                conds.append(f"{lo} <= {head}")
            if hi:
                conds.append(f"{head} < {size} - {hi}")
        where = f"\n    where {', '.join(conds)}" if conds else ""
    text += f"output y[i][j]: image(h, w) = {formula}{where}\n"
    return GeneratedSpec("stencil2d", text)


def reduction(d: Draw) -> GeneratedSpec:
    """A scalar: a sum over the elements, scaled, added to another, or a product of two."""
    n = d.choice([4, 8, 16])
    names = ["a", "b"][: d.integer(1, 2)]
    plain = d.integer(0, 3) == 0
    text = _header("reduction", {"n": n}, "n")
    for x in names:
        text += f"input {x}: ct vector(n){_input_attrs(d)}\n"
    if plain:
        text += "input p: pt vector(n)\n"
    reads = [f"{x}[j]" for x in names] + (["p[j]"] if plain else [])

    def one() -> str:
        upper = d.choice(["n", "n", str(n // 2)])
        body = polynomial(d, reads, max_degree=2, terms=2)
        return f"sum(j in 0..{upper}) ({body})"

    shape = d.integer(0, 3)
    formula = one()
    if shape == 1:
        formula = f"{d.choice([2, 3, -1, 8])} * ({formula})"
    elif shape == 2:
        formula = f"{formula} - {one()}"
    elif shape == 3:
        formula = f"({one()}) * ({one()})"
    if not any(f"{x}[j]" in formula for x in names):
        formula = f"sum(j in 0..n) {names[0]}[j] + {formula}"
    text += f"output s: scalar = {formula}\n"
    return GeneratedSpec("reduction", text)


def staged(d: Draw) -> GeneratedSpec:
    """One or two stages, then an output over them (vectors, or images with a stencil)."""
    if d.integer(0, 1) == 0:
        n = d.choice([4, 8])
        text = _header("staged", {"n": n}, "n")
        text += "input a: ct vector(n)\ninput b: ct vector(n)\n"
        text += f"stage t[k]: vector(n) = {polynomial(d, ['a[k]', 'b[k]'], max_degree=2)}\n"
        reads = ["t[k]", "a[k]"]
        if d.integer(0, 1) == 0:
            text += f"stage u[k]: vector(n) = {polynomial(d, ['a[k]', 'b[k]'], max_degree=1)}\n"
            reads.append("u[k]")
        formula = polynomial(d, reads, max_degree=2)
        if "t[k]" not in formula:
            formula = f"t[k] * ({formula})"
        if "u[k]" in reads and "u[k]" not in formula:
            formula += " - u[k]"  # a stage nothing reads is an error of its own
        text += f"output y[k]: vector(n) = {formula}\n"
        return GeneratedSpec("staged", text)
    h, w = d.choice([(4, 4), (8, 8)])
    text = _header("staged", {"w": w, "h": h}, "w * h")
    text += f"input x: ct image(h, w){_input_attrs(d)}\n"
    g = ""
    for t, (di, dj) in enumerate(_taps(d, [(0, 0), (0, 1), (1, 0), (1, 1)], 4)):
        g += _coefficient(d, f"x[{_shift('i', di)}][{_shift('j', dj)}]", first=t == 0)
    where = "\n    where i < h - 1, j < w - 1"
    text += f"stage g[i][j]: image(h, w) = {g}{where}\n"
    out = d.choice(["g[i][j]^2", "g[i][j] * x[i][j]", "g[i][j]^2 - 2 * g[i][j] + 1",
                    "3 * g[i][j] + x[i][j]^2"])  # fmt: skip
    text += f"output y[i][j]: image(h, w) = {out}{where}\n"
    return GeneratedSpec("staged", text)


def packing(d: Draw) -> GeneratedSpec:
    """The packing clauses, valid ones and (about one in four) ones that cannot hold."""
    kind = d.choice(["with", "with", "with_fixed", "broadcast", "broadcast", "bad_with_big",
                     "bad_broadcast", "bad_image", "bad_mutual"])  # fmt: skip
    if kind in ("with", "with_fixed"):
        m = d.choice([2, 4])
        n = d.choice([2 * m, 4 * m])
        text = _header("packed_with", {"n": n}, "n")
        text += f"input a: ct vector({m})\ninput b: ct vector({m}) packing with a\n"
        reads = ["a[k]", "b[k]"]
        if kind == "with_fixed":
            text += "input h: ct vector(2)\n"
            reads.append("h[1]")
        if d.integer(0, 2) == 0:
            text += "input c: pt vector(n)\n"
            reads.append("c[k]")
        formula = polynomial(d, reads, max_degree=2)
        if "a[k]" not in formula and "b[k]" not in formula:
            formula = f"a[k] * b[k] + {formula}"
        text += f"output y[k]: vector(n) = {formula} where k < {m}\n"
        return GeneratedSpec("packing", text)
    if kind == "broadcast":
        n, taps = d.choice([8, 16]), d.integer(2, 3)
        text = _header("broadcast", {"n": n}, "n")
        text += f"input x: ct vector(n)\ninput h: ct vector({taps}) packing broadcast\n"
        formula = ""
        for t in range(taps):
            formula += _coefficient(d, f"h[{t}] * x[{_shift('k', t)}]", first=t == 0)
        text += f"output y[k]: vector(n) = {formula}\n    where k < n - {taps - 1}\n"
        return GeneratedSpec("packing", text)
    n = d.choice([4, 8])
    if kind == "bad_with_big":  # two vectors of n slots in one ciphertext of n
        text = _header("too_big", {"n": n}, "n")
        text += "input a: ct vector(n)\ninput b: ct vector(n) packing with a\n"
        text += f"output y[k]: vector(n) = {polynomial(d, ['a[k]', 'b[k]'], max_degree=2)}\n"
    elif kind == "bad_broadcast":  # b is read elementwise, not at fixed elements
        text = _header("bad_broadcast", {"n": n}, "n")
        text += "input a: ct vector(n)\ninput b: ct vector(n) packing broadcast\n"
        text += "output y[k]: vector(n) = a[k] * b[k] + b[k]\n"
    elif kind == "bad_image":  # an image packed with a vector
        text = _header("image_with_vector", {"w": 2, "h": 2}, "8")
        text += "input x: ct image(h, w)\ninput v: ct vector(4) packing with x\n"
        text += "output y[i][j]: image(h, w) = x[i][j] + v[j]\n"
    else:  # each packed with the other
        text = _header("mutual", {"n": n}, "2 * n")
        text += "input a: ct vector(n) packing with b\ninput b: ct vector(n) packing with a\n"
        text += "output y[k]: vector(2 * n) = a[k] * b[k] where k < n\n"
    return GeneratedSpec("packing", text, valid=False)


FAMILIES: dict[str, Callable[[Draw], GeneratedSpec]] = {
    "elementwise": elementwise,
    "stencil1d": stencil1d,
    "stencil2d": stencil2d,
    "reduction": reduction,
    "staged": staged,
    "packing": packing,
}
"""Every family, by name; :func:`any_spec` picks among them evenly."""


def any_spec(d: Draw) -> GeneratedSpec:
    """A spec of any family."""
    return FAMILIES[d.choice(sorted(FAMILIES))](d)


def seeded(count: int, seed: int) -> list[GeneratedSpec]:
    """``count`` specs from ``seed``: the same list on every machine and run."""
    draw = RandomDraw(random.Random(seed))
    return [any_spec(draw) for _ in range(count)]
