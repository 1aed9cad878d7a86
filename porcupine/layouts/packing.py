"""Client packings: how the client lays its inputs out in ciphertexts before encrypting.

Packing costs nothing under encryption (the client arranges plaintext values), but it
decides what the kernel must do. A :class:`Packing` says which element of which input each
slot of each ciphertext holds (or 0), and where each output element lands; its
:attr:`~Packing.spec` is the ordinary spec the kernel computes over the ciphertexts, so the
synthesizer and verification take it as they take a user's. :func:`check` proves the
packed spec equal to the original one, exactly, before it is used.

The packings (:func:`options` tries them all for ``porcupine synth --layout search``):

* ``natural``: every input as its layout says;
* ``broadcast``: an input read at fixed elements (a filter's taps) gets one ciphertext per
  element, holding it in every slot: the kernel needs no data movement for it;
* ``aligned``: for a sum of terms (a matrix product, a convolution), each input gets, for
  every output and term, the element that term reads, in a slot of its own: the kernel
  is the term slot by slot, then a reduction over the terms. Terms major (term t of output
  o in slot t*n + o) reduces by rotations into the natural output; terms minor (slot
  o*T + t) reduces by a window sum, the output landing in every T-th slot;
* ``packed``: the ciphertext inputs one after the other in a single ciphertext.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from quill.errors import QuillError
from quill.ops import Kind
from quill.params import LARGEST_ROW
from quill.spec import Spec
from quill.spec_ast import (
    Decl,
    DefinitionAst,
    InputAst,
    LayoutAst,
    Num,
    SlotsDecl,
    SpecFile,
)
from quill.spec_eval import InputSlot, StageSlot, Term, children
from quill.spec_resolve import instantiate
from quill.verify import symbolic_inputs

log = logging.getLogger("porcupine.layouts.packing")

Element = tuple[str, int]  # (input, flat element index)
MAX_SLOTS = LARGEST_ROW  # a packing must fit a row of the largest ring of quill.params


@dataclass(frozen=True)
class Ciphertext:
    """One ciphertext (or plaintext) the client makes: what each slot holds."""

    name: str
    kind: Kind
    slots: tuple[Element | None, ...]


@dataclass(frozen=True)
class Packing:
    """A client packing and the spec of the kernel over its ciphertexts."""

    name: str
    ciphertexts: tuple[Ciphertext, ...]
    output: tuple[tuple[int, int], ...]  # (flat output element, the slot it lands in)
    spec: Spec

    @property
    def slots(self) -> int:
        return self.spec.n


def natural(spec: Spec) -> Packing:
    """Every input as its layout says."""
    cts = tuple(own(spec, d.name) for d in spec.inputs)
    return Packing("natural", cts, tuple((s, s) for s in spec.output_slots()), spec)


def own(spec: Spec, name: str, slots: int | None = None) -> Ciphertext:
    """Input ``name`` in a ciphertext of its own, as its layout says (of ``slots`` slots,
    by default the spec's; the slots past its layout hold 0)."""
    d = spec.input(name)
    n = spec.n if slots is None else slots
    return Ciphertext(
        name, d.kind, tuple((name, s) if s < d.layout.size else None for s in range(n))
    )


def source_input(spec: Spec, name: str) -> InputAst:
    """The declaration of input ``name`` as written."""
    decls = spec.origin.source.decls
    return next(d for d in decls if isinstance(d, InputAst) and d.name == name)


def source_output(spec: Spec) -> DefinitionAst:
    """The output definition as written."""
    decls = spec.origin.source.decls
    return next(d for d in decls if isinstance(d, DefinitionAst) and d.role == "output")


# --- the formula, term by term -----------------------------------------------------------


def output_terms(spec: Spec) -> dict[int, Term]:
    return dict(spec.terms())


def leaves(t: Term) -> list[InputSlot]:
    """The input reads of ``t`` in a fixed (left to right) order."""
    if isinstance(t, InputSlot):
        return [t]
    if isinstance(t, StageSlot):
        return []
    out: list[InputSlot] = []
    for child in children(t):
        out += leaves(child)
    return out


def term_shape(t: Term) -> object:
    """``t`` with each read replaced by (input, its occurrence among that input's reads)."""
    seen: dict[str, int] = {}

    def go(x: Term) -> object:
        if isinstance(x, InputSlot):
            k = seen.get(x.name, 0)
            seen[x.name] = k + 1
            return (x.name, k)
        if isinstance(x, StageSlot):
            return None
        kids = children(x)
        return (type(x).__name__, getattr(x, "value", None), getattr(x, "exponent", None),
                tuple(go(c) for c in kids))  # fmt: skip

    return go(t)


# --- building a packed spec ----------------------------------------------------------------


def spec_file(
    spec: Spec, n: int, inputs: Sequence[tuple[str, Kind, LayoutAst]], output: DefinitionAst
) -> SpecFile:
    source = spec.origin.source
    kept: list[Decl] = [
        d for d in source.decls if not isinstance(d, (InputAst, DefinitionAst, SlotsDecl))
    ]
    bits = {d.name for d in spec.inputs if d.domain.value == "bits"}
    decls: list[Decl] = [*kept, SlotsDecl(Num(n))]
    for name, kind, layout in inputs:
        base = name.split("__")[0]
        decls.append(InputAst(name, kind.value, layout, base in bits, False))
    decls.append(output)
    return SpecFile(source.file, source.text, tuple(decls))


def build(spec: Spec, file: SpecFile) -> Spec | None:
    try:
        return instantiate(file, dict(spec.params))
    except QuillError as e:
        log.info("packing not expressible: %s", e)
        return None


def dims(n: int) -> LayoutAst:
    return LayoutAst("vector", (Num(n),))


def heads_of(spec: Spec) -> tuple[str, ...]:
    """The output's index names as written."""
    return source_output(spec).indices


def position(shape: tuple[int, ...], slot: int) -> tuple[int, ...]:
    return divmod(slot, shape[1]) if len(shape) == 2 else (slot,) if shape else ()


def check(packing: Packing, original: Spec) -> bool:
    """Whether the packed spec, on the ciphertexts the client makes from any inputs,
    computes the original spec at every output element that matters: exactly, on
    symbolic inputs."""
    sym = symbolic_inputs(original)
    zero = sym.ring.const(0)
    cts = {
        c.name: [zero if e is None else sym.vectors[e[0]][e[1]] for e in c.slots]
        for c in packing.ciphertexts
    }
    want = original.evaluate(sym.ring, sym.vectors)
    got = packing.spec.evaluate(sym.ring, cts)
    return all(got.get(slot) == want[o] for o, slot in packing.output)
