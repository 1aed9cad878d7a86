"""Kernel specs: what a kernel computes, slot by slot, as the synthesizer's reference.

A ``.spec`` file names the kernel, its size params, the slot count ``n``, its inputs (each a
ciphertext or plaintext with a layout), optional intermediate ``stage`` definitions, one
``output`` definition, and optional hints for the synthesizer::

    spec box_blur
    param w = 4                        # sizes are params with defaults, overridable
    param h = 4
    slots w * h                        # n: must be a power of two
    input x: ct image(h, w)            # x[i][j] lives in slot i*w + j
    output y[i][j]: image(h, w) = x[i][j] + x[i][j+1] + x[i+1][j] + x[i+1][j+1]
        where i < h - 1, j < w - 1     # the other slots are don't-care

Layouts: ``vector(m)`` (element k in slot k), ``image(h, w)`` (row-major), ``scalar`` (slot
0). Slots outside an input's layout hold 0. ``bits`` restricts an input to {0, 1};
``pad zero`` makes reads outside its shape 0 (otherwise such a read, at a slot that matters,
is an error). Values are computed mod T = 65537; ``sum(k in lo..hi) e`` is half-open and its
body is a product (parenthesise a sum of terms); ``e ^ k`` takes a literal exponent.

Cyclic reads and value ranges::

    input x: ct image(h, w) in 0..255  # every element lies in 0..255 (both included)
    output y[i][j]: image(h, w) = x[i][j] + x[(i + 1) mod h][(j + w - 1) mod w]

* ``a mod m`` is the remainder in ``0 .. m-1`` (Python's ``%``), for a modulus ``m >= 1``;
  ``mod 0`` or a negative modulus is an error, located, naming the index it happened at. It
  binds like ``*``, so ``i + 1 mod h`` is ``i + (1 mod h)``. It is integer arithmetic: in
  index expressions, sizes, ``where``, hints, and in value expressions over params and
  indices only (``(i mod 2) * x[i]``); the remainder of a value that reads an input is an
  error (values are already mod T).
* ``in lo..hi`` declares the values an input's elements may take: integers, inclusive,
  possibly negative, ``lo <= hi``, both within ``-(T-1)/2 .. (T-1)/2`` (one value per residue
  mod T); params may appear in the bounds. :attr:`InputDecl.value_range` holds it (``None``:
  all of Z_T); :meth:`InputDecl.value_bounds` gives the range every element lies in, ``bits``
  included. ``bits`` means ``in 0..1``: a range within 0..1 makes an input ``bits`` too
  (:attr:`Domain.BITS`, so x^2 = x is used), and ``bits`` with a range is allowed only when
  the range lies within 0..1. :meth:`Spec.random_inputs` draws from the declared range and
  returns negative values as they are (every consumer reduces mod T).

Beyond the brief, documented here:

* In a value expression a bare param or index/sum variable stands for its integer value
  (``sum(k in 0..n) k * a[k]``); ``!=`` is allowed in ``where``; ``^`` also works in index
  expressions.
* Keywords (``spec param slots input stage output hint ops rotations components constants ct
  pt vector image scalar bits pad zero where sum in mod``) cannot be used as names.
* Stages may be declared in any order; reading each other in a cycle is an error, and so is
  a stage no slot that matters depends on.
* ``hint rotations`` amounts are normalised into ``(-n/2, n/2]`` (the same rotation), deduped.
* Limits: ``n`` at most a row of the largest ring of :mod:`quill.params` (8192 slots; larger
  data is tiled by the application), and, to keep a typo from hanging the tool, exponents
  ``<= 64`` and at most a few million unrolled terms per spec.
* :class:`InputDecl` has one extra field, ``zero_outside`` (default ``True``): ``False`` marks
  an input whose slots outside its layout are arbitrary, as for a stage that
  :meth:`Spec.with_stages_as_inputs` turned into an input (an earlier kernel computed it and
  only guarantees the slots later steps read).

Semantic checks all run when the spec is instantiated with its params (:func:`parse_spec`,
:func:`load_spec`), so a bad spec fails at load time with a located, worded error.

This module is the public facade. The layers below it, each importing only those after it:
:mod:`quill.spec_parser` (text -> :mod:`quill.spec_ast`), :mod:`quill.spec_resolve` (params,
sizes, layouts, heads, regions, hints), :mod:`quill.spec_unroll` (definitions checked and
unrolled into terms, stage order), :mod:`quill.spec_index` (integer expressions, located
errors), :mod:`quill.spec_model` (:class:`Spec` and its parts, plain frozen values) and
:mod:`quill.spec_eval` (rings and terms).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from quill.algebra import IntRing, ModTRing, ScalarRing
from quill.errors import QuillSemanticError, QuillSyntaxError
from quill.spec_model import Definition, Domain, Hints, InputDecl, Layout, Spec
from quill.spec_parser import parse_spec_file
from quill.spec_resolve import instantiate

__all__ = [
    "Definition",
    "Domain",
    "Hints",
    "InputDecl",
    "IntRing",
    "Layout",
    "ModTRing",
    "ScalarRing",
    "Spec",
    "load_spec",
    "parse_spec",
]


def parse_spec(text: str, file: str = "<spec>", params: Mapping[str, int] | None = None) -> Spec:
    """Parse and instantiate a spec; ``params`` override the declared defaults.

    Raises :class:`~quill.errors.QuillSyntaxError` or :class:`QuillSemanticError`.
    """
    return instantiate(parse_spec_file(text, file), params)


def load_spec(path: str | Path, params: Mapping[str, int] | None = None) -> Spec:
    """Read and instantiate the spec file at ``path``."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise QuillSyntaxError(f"{path} is not UTF-8 text ({e.reason})") from None
    except OSError as e:
        raise QuillSemanticError(f"cannot read spec {path}: {e.strerror or e}") from None
    return parse_spec(text, str(path), params)
