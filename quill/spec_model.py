"""The spec model: what an instantiated kernel spec is, as plain frozen values.

:class:`Spec` holds the resolved params, slot count, inputs, stages, output and hints, and
evaluates its reference semantics from the terms the spec was unrolled into (see
:mod:`quill.spec_eval`). Specs are built by the resolution and unrolling layers
(:mod:`quill.spec_resolve`, :mod:`quill.spec_unroll`), which import this module; a spec
derives new specs (:meth:`Spec.at`, :meth:`Spec.stage_spec`,
:meth:`Spec.with_stages_as_inputs`) through the :class:`Builder` those layers left in its
:class:`Origin`, so no import goes back up.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from quill.algebra import ModTRing, ScalarRing
from quill.ops import Kind, Opcode
from quill.slots import T
from quill.spec_ast import Comparison, Expr, Span, SpecFile
from quill.spec_eval import Add, Const, Mul, Negate, Power, Sub, Term, evaluator

S = TypeVar("S")
Index = tuple[int, ...]


class Domain(Enum):
    """The values an input's elements may take."""

    ZT = "zt"  # all of Z_T
    BITS = "bits"  # 0 or 1


@dataclass(frozen=True)
class Layout:
    """Where the elements of an input or definition live in the slots.

    ``kind`` is ``"vector"`` (shape ``(m,)``, element k in slot k), ``"image"`` (shape
    ``(h, w)``, element [i][j] in slot ``i*w + j``) or ``"scalar"`` (shape ``()``, slot 0).
    """

    kind: str
    shape: tuple[int, ...]

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def slot(self, index: Index) -> int:
        """The slot of element ``index`` (which must be inside the shape)."""
        if self.kind == "image":
            return index[0] * self.shape[1] + index[1]
        return index[0] if self.kind == "vector" else 0

    def contains(self, index: Sequence[int]) -> bool:
        """Whether ``index`` names an element of this layout."""
        return len(index) == len(self.shape) and all(
            0 <= i < d for i, d in zip(index, self.shape, strict=True)
        )

    def slots(self) -> tuple[int, ...]:
        """Every slot the layout covers, ascending (always ``0 .. size-1``)."""
        return tuple(range(self.size))

    def indices(self) -> Iterator[Index]:
        """Every element index, in slot order."""
        return itertools.product(*(range(d) for d in self.shape))

    def __str__(self) -> str:
        return self.kind if not self.shape else f"{self.kind}({', '.join(map(str, self.shape))})"


PACKINGS = {
    "natural": "as its layout says (the default)",
    "free": "as the compiler finds cheapest (porcupine synth --layout search)",
    "broadcast": "each element in a ciphertext of its own, in every slot",
}
"""The packings an input may ask for, besides ``packing with X`` (in X's ciphertext, after
X's elements)."""


@dataclass(frozen=True)
class InputDecl:
    """A kernel input. ``zero_outside``: slots outside the layout hold 0 (the backend encodes
    them so); ``False`` for a stage turned into an input, whose other slots are arbitrary.
    ``packing``: how the client packs it into ciphertexts, when not as its layout says
    (see :data:`PACKINGS`; applied by the compiler, :mod:`porcupine.layouts.packing`).
    ``value_range``: the declared ``in lo..hi`` (inclusive), ``None`` if none was (all of
    Z_T, or 0..1 for ``bits``); :meth:`value_bounds` gives the effective range."""

    name: str
    kind: Kind
    layout: Layout
    domain: Domain
    pad: bool
    zero_outside: bool = True
    value_range: tuple[int, int] | None = None
    packing: str | None = None  # the client packing asked for (None: the natural one)
    packed_with: str | None = None  # ``packing with X``: the input whose ciphertext it shares

    def value_bounds(self) -> tuple[int, int] | None:
        """The inclusive range ``(lo, hi)`` every element lies in (the declared range, else
        ``(0, 1)`` for bits), or ``None`` for any value of Z_T."""
        if self.value_range is not None:
            return self.value_range
        return (0, 1) if self.domain is Domain.BITS else None


@dataclass(frozen=True)
class Hints:
    """Optional guidance for the synthesizer; ``None`` means "not given"."""

    ops: tuple[Opcode, ...] | None = None
    rotations: tuple[int, ...] | None = None
    components: int | None = None
    constants: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Definition:
    """A stage or the output: ``name[indices]: layout = expr where where``.

    ``region`` is authoritative: the index tuples that matter, in slot order. It is the
    layout's indices satisfying ``where``, except in :meth:`Spec.stage_spec`, where it is
    narrowed to what later definitions read.
    """

    name: str
    indices: tuple[str, ...]
    layout: Layout
    expr: Expr
    where: tuple[Comparison, ...]
    region: tuple[Index, ...]
    span: Span | None = field(default=None, compare=False, repr=False)

    def slots(self) -> tuple[int, ...]:
        """The slots that matter, ascending."""
        return tuple(self.layout.slot(i) for i in self.region)


class Builder(Protocol):
    """The layers that build specs, as a spec sees them when it derives another."""

    def instantiate(self, source: SpecFile, params: Mapping[str, int]) -> Spec:
        """Resolve ``source`` with ``params`` overriding its defaults, check and unroll it."""
        ...

    def assemble(
        self,
        origin: Origin,
        name: str,
        params: tuple[tuple[str, int], ...],
        n: int,
        inputs: tuple[InputDecl, ...],
        stages: tuple[Definition, ...],
        output: Definition,
        hints: Hints,
    ) -> Spec:
        """Check and unroll resolved definitions into a spec (errors located in the source)."""
        ...


@dataclass(frozen=True)
class Origin:
    """Where a spec comes from: the parsed file (re-instantiated by :meth:`Spec.at`, and
    where errors are located), the layers that build specs from it, and the derivations
    applied since: a stage name for :meth:`Spec.stage_spec`, ``None`` for
    :meth:`Spec.with_stages_as_inputs`."""

    source: SpecFile
    builder: Builder
    steps: tuple[str | None, ...] = ()

    def then(self, step: str | None) -> Origin:
        """This origin, one derivation further."""
        return replace(self, steps=(*self.steps, step))


@dataclass(frozen=True)
class Unrolled:
    """The spec unrolled per slot (see :mod:`quill.spec_eval`), shared by evaluations."""

    origin: Origin
    terms: Mapping[str, Mapping[int, Term]]  # definition -> slot -> term, over its region
    order: tuple[str, ...]  # stages, each after every stage it reads
    demand: Mapping[str, tuple[int, ...]]  # stage -> the slots the output depends on
    reads: Mapping[str, frozenset[str]]  # definition -> inputs and stages its expr names


class _LazyStages(Mapping[str, Mapping[int, Any]]):
    """Stage values computed on first read (for evaluating a few output slots only)."""

    def __init__(self, terms: Mapping[str, Mapping[int, Term]]) -> None:
        self.terms = terms
        self.ev: Callable[[Term], Any] | None = None
        self.memo: dict[str, dict[int, Any]] = {}

    def __getitem__(self, name: str) -> Mapping[int, Any]:
        return _LazyStage(self, name)

    def __iter__(self) -> Iterator[str]:
        return iter(self.terms)

    def __len__(self) -> int:
        return len(self.terms)


class _LazyStage(Mapping[int, Any]):
    def __init__(self, stages: _LazyStages, name: str) -> None:
        self.stages, self.name = stages, name
        self.memo = stages.memo.setdefault(name, {})

    def __getitem__(self, slot: int) -> Any:
        if slot not in self.memo:
            assert self.stages.ev is not None
            self.memo[slot] = self.stages.ev(self.stages.terms[self.name][slot])
        return self.memo[slot]

    def __iter__(self) -> Iterator[int]:
        return iter(self.stages.terms[self.name])

    def __len__(self) -> int:
        return len(self.stages.terms[self.name])


@dataclass(frozen=True)
class Spec:
    """An instantiated kernel spec: params resolved, every check passed.

    ``stages`` are in dependency order. Build one with :func:`quill.spec.parse_spec` or
    :func:`quill.spec.load_spec`.
    """

    name: str
    file: str
    params: tuple[tuple[str, int], ...]
    n: int
    inputs: tuple[InputDecl, ...]
    stages: tuple[Definition, ...]
    output: Definition
    hints: Hints
    _unrolled: Unrolled = field(compare=False, repr=False)

    @property
    def origin(self) -> Origin:
        """Where the spec comes from: its parsed file and the derivations applied since."""
        return self._unrolled.origin

    def terms(self, name: str | None = None) -> Mapping[int, Term]:
        """The unrolled term (:mod:`quill.spec_eval`) of every slot of definition ``name``
        (by default the output) over its region: what a slot computes, as a tree."""
        return self._unrolled.terms[self.output.name if name is None else name]

    def at(self, params: Mapping[str, int] | None = None) -> Spec:
        """The same spec instantiated with other parameters (``None``: its defaults), from the
        parsed file kept on it (no text is parsed again); a spec derived by
        :meth:`stage_spec` or :meth:`with_stages_as_inputs` is derived again the same way."""
        origin = self._unrolled.origin
        spec = origin.builder.instantiate(origin.source, dict(params or {}))
        for step in origin.steps:
            spec = spec.with_stages_as_inputs() if step is None else spec.stage_spec(step)
        return spec

    def input(self, name: str) -> InputDecl:
        """The input called ``name`` (``KeyError`` if there is none)."""
        for i in self.inputs:
            if i.name == name:
                return i
        raise KeyError(f"spec {self.name} has no input {name!r}")

    def stage(self, name: str) -> Definition:
        """The stage called ``name`` (``KeyError`` if there is none)."""
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(f"spec {self.name} has no stage {name!r}")

    def output_slots(self) -> tuple[int, ...]:
        """The output slots that matter, ascending; every other slot is don't-care."""
        return self.output.slots()

    def evaluate(
        self,
        ring: ScalarRing[S],
        inputs: Mapping[str, Sequence[S]],
        slots: Iterable[int] | None = None,
    ) -> dict[int, S]:
        """The reference value at every output slot that matters (or at ``slots`` only),
        computed in ``ring`` from one length-``n`` slot vector of ring elements per input.
        With ``slots``, stages are evaluated only where those slots read them."""
        for decl in self.inputs:
            if decl.name not in inputs:
                raise KeyError(f"no value given for input {decl.name!r} of spec {self.name}")
            if len(inputs[decl.name]) != self.n:
                raise ValueError(
                    f"input {decl.name!r} has {len(inputs[decl.name])} slots, expected {self.n}"
                )
        u = self._unrolled
        output = u.terms[self.output.name]
        if slots is not None:
            stages = _LazyStages(u.terms)
            ev = evaluator(ring, inputs, stages)
            stages.ev = ev
            return {slot: ev(output[slot]) for slot in slots}
        stage_values: dict[str, dict[int, S]] = {}
        ev = evaluator(ring, inputs, stage_values)
        for name in u.order:
            terms = u.terms[name]
            stage_values[name] = {slot: ev(terms[slot]) for slot in u.demand[name]}
        return {slot: ev(term) for slot, term in output.items()}

    def literals(self) -> frozenset[int]:
        """The integer constants the output's formula and the stages it reads are written
        with (params and indices resolved, exponents excluded): what a kernel may scale
        by or add."""
        u = self._unrolled
        todo: list[Term] = [t for name in u.terms for t in u.terms[name].values()]
        seen: set[int] = set()
        found: set[int] = set()
        while todo:
            t = todo.pop()
            if id(t) in seen:
                continue
            seen.add(id(t))
            if isinstance(t, Const):
                found.add(t.value)
            elif isinstance(t, Add):
                todo.extend(t.parts)
            elif isinstance(t, (Sub, Mul)):
                todo += (t.left, t.right)
            elif isinstance(t, Negate):
                todo.append(t.operand)
            elif isinstance(t, Power):
                todo.append(t.base)
        return frozenset(found)

    def reference(self, inputs: Mapping[str, npt.ArrayLike]) -> dict[int, int]:
        """:meth:`evaluate` mod T on integer slot vectors (reduced mod T first)."""
        vectors = {k: (np.asarray(v, dtype=np.int64) % T).tolist() for k, v in inputs.items()}
        return self.evaluate(ModTRing(), vectors)

    def random_inputs(self, rng: np.random.Generator) -> dict[str, npt.NDArray[np.int64]]:
        """Random int64 slot vectors: layout slots drawn uniformly from the input's
        :meth:`~InputDecl.value_bounds` (else from ``0 .. T-1``), 0 outside the layout
        (drawn there too for inputs with ``zero_outside=False``).

        Values of a range with negative bounds are negative integers, not reduced mod T:
        what an application passes. Every consumer (:meth:`reference`, the interpreter, the
        backend's encoder) reduces mod T itself.
        """
        out: dict[str, npt.NDArray[np.int64]] = {}
        for decl in self.inputs:
            vec = np.zeros(self.n, dtype=np.int64)
            count = decl.layout.size if decl.zero_outside else self.n
            low, high = decl.value_bounds() or (0, T - 1)
            vec[:count] = rng.integers(low, high + 1, size=count, dtype=np.int64)
            out[decl.name] = vec
        return out

    def stage_spec(self, name: str) -> Spec:
        """The sub-kernel computing stage ``name`` from the inputs: its output is the stage,
        restricted to the slots later definitions read for the output slots that matter; its
        stages are the ones it depends on. Ops, rotation and constant hints carry over (they
        describe the whole kernel), the component count does not. For a stage that reads
        other stages, ``.with_stages_as_inputs()`` on the result is the one step computing it
        from those stages (how a multi-level kernel such as harris decomposes)."""
        stage = self.stage(name)
        u = self._unrolled
        wanted = set(u.demand[name])
        output = replace(
            stage, region=tuple(i for i in stage.region if stage.layout.slot(i) in wanted)
        )
        needed = self._closure(name)
        stages = tuple(s for s in self.stages if s.name in needed and s.name != name)
        inputs = tuple(i for i in self.inputs if i.name in needed)
        hints = replace(self.hints, components=None)
        origin = u.origin.then(name)
        return origin.builder.assemble(
            origin, f"{self.name}_{name}", self.params, self.n, inputs, stages, output, hints
        )

    def with_stages_as_inputs(self) -> Spec:
        """The last step of a multi-stage kernel: each stage the output reads becomes a
        ciphertext input with the stage's layout (arbitrary outside the stage's slots that
        matter); the output is unchanged and no stages remain."""
        if not self.stages:
            return self
        u = self._unrolled
        read = u.reads[self.output.name]
        inputs = tuple(i for i in self.inputs if i.name in read) + tuple(
            InputDecl(s.name, Kind.CT, s.layout, Domain.ZT, pad=False, zero_outside=False)
            for s in self.stages
            if s.name in read
        )
        origin = u.origin.then(None)
        return origin.builder.assemble(
            origin, self.name, self.params, self.n, inputs, (), self.output, self.hints
        )

    def _closure(self, name: str) -> set[str]:
        """``name`` and every input and stage it reads, transitively."""
        reads = self._unrolled.reads
        seen, todo = {name}, [name]
        while todo:
            for r in reads.get(todo.pop(), ()):
                if r not in seen:
                    seen.add(r)
                    todo.append(r)
        return seen
