"""The tile and the ring for data of a given size: the compiler's choice for an application.

A kernel runs on ciphertexts of one size; an application's data has its own (a 512x512
photo, a million-element vector). :mod:`porcupine.backend.tiling` says how the spec's data
splits (stencil tiles with halos, reduction chunks); this module chooses the kernel's size
(its tile) and parameter set so that the whole job costs least by the cost table: for each
tile size a power of two per axis (up to a row of the largest ring), the number of tiles
the data needs, and per tile the kernel's estimated latency (the program lifted to that
size, :func:`porcupine.staging.scale.lift`) plus the client's encryption and decryption of a
ciphertext (the table's ``encrypt`` and ``decrypt`` rows), at the cheapest parameter set
whose noise margin holds the kernel, and for a reduction the server's sum of its chunks
(log2(ciphertexts) more bits). Two tiles share each ciphertext, one per BFV row. Larger
tiles waste less on halos and pay fewer ciphertexts, but may need a larger ring.

The server evaluates ciphertexts on ``workers`` processes side by side: the whole job takes
the client's encryption and decryption of every ciphertext (one core) plus the server's
rounds, ciphertexts rounded up to a multiple of the workers (:meth:`TileOption.time_ms`).
With more workers, more and smaller tiles on a smaller ring can balance better than a few
large ones: 5 ciphertexts on 4 workers take 2 rounds, 8 smaller ones take 2 rounds too.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from porcupine.backend.tiling import Tiling, derive_tiling
from porcupine.budget import Budget, OutOfBudget
from porcupine.layouts.choices import requested
from porcupine.outcomes import Source, Stop
from porcupine.staging.instances import smallest_instance
from porcupine.staging.scale import LiftError, lift
from porcupine.synthesize import (
    InstanceKernel,
    Options,
    SynthesisError,
    SynthesisResult,
    synthesize,
)
from quill.cost import DEFAULT_TABLE, CostTable, program_cost
from quill.errors import QuillError
from quill.ir import Program
from quill.noise import MARGIN_BITS, assess, slots_needed
from quill.params import BY_NAME, SETS, ParameterSet
from quill.relin import place_relinearizations
from quill.spec import Spec
from quill.spec_ast import InputAst, Name
from quill.verify import verify

MAX_SLOTS = max(s.slots for s in SETS)
ROWS = 2
"""Tiles per ciphertext: BFV's two rows of N/2 slots, which rotations never mix."""


@dataclass(frozen=True, kw_only=True)
class TileOption:
    """One tile size at its cheapest parameter set, priced for the whole data."""

    params: tuple[tuple[str, int], ...]  # the spec's params for the tile kernel
    shape: tuple[int, ...]  # the tile
    param_set: str
    tiles: int  # the data's tiles (chunks)
    kernel_ms: float  # per ciphertext, the kernel on the server (cost model)
    client_ms: float  # per ciphertext, encryption and decryption on the client (cost table)

    @property
    def ciphertexts(self) -> int:
        """Per input: two tiles share a ciphertext, one in each BFV row."""
        return -(-self.tiles // ROWS)

    @property
    def total_ms(self) -> float:
        """Client and server time for the whole data, one core."""
        return self.time_ms(1)

    def time_ms(self, workers: int) -> float:
        """Client and server time for the whole data, the server on ``workers`` processes:
        the client's every ciphertext, the server's rounds of ``workers`` ciphertexts."""
        rounds = -(-self.ciphertexts // workers)
        return self.ciphertexts * self.client_ms + rounds * self.kernel_ms


@dataclass(frozen=True, kw_only=True)
class AppPlan:
    """The tile chosen for data of ``shape``, and every option it was chosen from."""

    spec: str
    shape: tuple[int, ...]
    tiling: Tiling
    chosen: TileOption
    options: tuple[TileOption, ...]
    workers: int = 1  # the server's worker processes the time is estimated for

    def describe(self) -> str:
        """What was chosen and why, for people."""
        c, w = self.chosen, self.workers
        where = "on one core" if w == 1 else f"with the server on {w} workers"
        lines = [
            f"{self.spec} on data of shape {self.shape} ({self.tiling.kind}): tile "
            f"{'x'.join(map(str, c.shape))} at {c.param_set}, {c.tiles} tiles in {c.ciphertexts} "
            "ciphertexts per input, "
            f"estimated {c.time_ms(w) / 1000:.2f} s {where} "
            f"({c.kernel_ms:.2f} ms kernel + {c.client_ms:.2f} ms encrypt/decrypt per ciphertext)",
            "  options (cheapest first):",
        ]
        for o in sorted(self.options, key=lambda o: o.time_ms(w))[:6]:
            lines.append(
                f"    {'x'.join(map(str, o.shape)):>10} {o.param_set:>16} {o.tiles:6d} tiles "
                f"{o.ciphertexts:6d} ciphertexts {o.time_ms(w) / 1000:8.2f} s"
            )
        return "\n".join(lines)


class NoTile(ValueError):
    """No tile size of the spec fits the data (or the spec cannot be tiled)."""


def axis_params(spec: Spec) -> tuple[str, ...]:
    """The param that sizes each axis of the spec's tiled data (its ciphertext inputs,
    ``image(h, w)``: h, w); a dimension written as an expression cannot be chosen, and
    raises :class:`NoTile`."""
    layout = next(
        d.layout for d in spec.origin.source.decls if isinstance(d, InputAst) and d.kind == "ct"
    )
    names = []
    for arg in layout.args:
        if not isinstance(arg, Name) or arg.name not in dict(spec.params):
            raise NoTile(f"the inputs of {spec.name} are not sized by bare params: not tiled")
        names.append(arg.name)
    return tuple(names)


def plan_application(
    spec: Spec,
    program: Program,
    shape: tuple[int, ...],
    table: CostTable = DEFAULT_TABLE,
    workers: int = 1,
) -> AppPlan:
    """The cheapest tile for data of ``shape`` (every tiled input's), given ``program``,
    a verified kernel of ``spec`` at its own size, with the server on ``workers``
    processes (:meth:`TileOption.time_ms`). Raises :class:`NoTile` for a fixed kernel
    given another shape, and when no tile size holds the data."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    tiling = derive_tiling(spec)
    if tiling.kind == "fixed":
        raise NoTile(f"{spec.name} runs on its own size only: {tiling.reason}")
    axes = axis_params(spec)
    if len(axes) != len(shape):
        raise NoTile(f"{spec.name}'s data has {len(axes)} axes, not {len(shape)}")
    options = []
    for sizes in _tile_sizes(spec, axes, shape, tiling):
        params = {**dict(spec.params), **dict(zip(axes, sizes, strict=True))}
        tiles = _tiles(tiling, sizes, shape)
        if tiles < 1:
            continue
        option = _priced(spec, program, params, sizes, tiles, tiling, table)
        if option is not None:
            options.append(option)
    if not options:
        raise NoTile(f"no tile size of {spec.name} holds data of shape {shape}")
    chosen = min(options, key=lambda o: (o.time_ms(workers), o.tiles))
    return AppPlan(
        spec=spec.name,
        shape=shape,
        tiling=tiling,
        chosen=chosen,
        options=tuple(options),
        workers=workers,
    )


def _tile_sizes(
    spec: Spec, axes: tuple[str, ...], shape: tuple[int, ...], tiling: Tiling
) -> list[tuple[int, ...]]:
    """Per axis powers of two from the spec's own size to the first that covers the data
    with its halo; products up to a row of the largest ring."""
    own = dict(spec.params)
    choices = []
    for axis, (name, size) in enumerate(zip(axes, shape, strict=True)):
        lo, hi = tiling.margins[axis] if tiling.kind == "stencil" else (0, 0)
        reads = tiling.reads[axis] if tiling.kind == "stencil" else (0, 0)
        need = size + max(lo, reads[0]) + max(hi, reads[1])
        sizes, s = [], max(1, own[name])
        while True:
            sizes.append(s)
            if s >= need or s >= MAX_SLOTS:
                break
            s *= 2
        choices.append(sizes)
    grid: list[tuple[int, ...]] = [()]
    for sizes in choices:
        grid = [(*g, s) for g in grid for s in sizes]
    return [g for g in grid if math.prod(g) <= MAX_SLOTS]


def _tiles(tiling: Tiling, sizes: tuple[int, ...], shape: tuple[int, ...]) -> int:
    """How many tiles of ``sizes`` the data takes (as the emitted module's tiles section
    cuts it); 0 when a tile is too small for its halo."""
    if tiling.kind == "reduction":
        return -(-shape[0] // sizes[0])
    count = 1
    for size, data, (r_lo, r_hi), (m_lo, m_hi) in zip(
        sizes, shape, tiling.reads, tiling.margins, strict=True
    ):
        step = size - max(r_lo, m_lo) - max(r_hi, m_hi)
        if step < 1:
            return 0
        count *= max(1, -(-(data - m_lo - m_hi) // step))
    return count


def _priced(
    spec: Spec,
    program: Program,
    params: Mapping[str, int],
    sizes: tuple[int, ...],
    tiles: int,
    tiling: Tiling,
    table: CostTable,
) -> TileOption | None:
    """The option of one tile size at its cheapest parameter set, or None when the spec
    does not instantiate there or no set holds the kernel (with a reduction's sum).

    A stencil's kernel lifted to another size has the same instructions (only rotation
    amounts change), so it is priced as it is; a reduction's sum grows by a round per
    doubling, so it is lifted first."""
    lifted = program
    if tiling.kind == "reduction" and math.prod(sizes) != spec.n:
        try:
            lifted = lift(program, spec, spec.at(params))
        except (QuillError, LiftError):
            return None
    lowered = place_relinearizations(lifted)
    summed = -(-tiles // ROWS)  # a reduction's ciphertexts the server adds up
    extra = math.log2(summed) if tiling.kind == "reduction" and summed > 1 else 0.0
    need = slots_needed(lowered, math.prod(sizes))
    best: TileOption | None = None
    for s in SETS:
        if s.name not in table.latency_ms or s.slots < need:
            continue
        if assess(lowered, s).margin_bits < MARGIN_BITS + extra:
            continue
        row = table.at(s)
        option = TileOption(
            params=tuple(sorted(params.items())),
            shape=sizes,
            param_set=s.name,
            tiles=tiles,
            kernel_ms=program_cost(lifted, s, table),
            client_ms=row["encrypt"] + row["decrypt"],
        )
        if best is None or option.total_ms < best.total_ms:  # a set's kernel: any workers
            best = option
    return best


@dataclass(frozen=True, kw_only=True)
class AppKernel:
    """A kernel compiled for data of a given size: the plan, the spec at the chosen tile and
    the kernel synthesized (and proven) for it; or, when the budget ran out before the
    tile's synthesis began, the spec at its own size and its kernel (:attr:`tiled` false)."""

    plan: AppPlan
    spec: Spec
    result: SynthesisResult

    @property
    def tiled(self) -> bool:
        """Whether the kernel is the chosen tile's (not the spec's at its own size)."""
        return dict(self.spec.params) == dict(self.plan.chosen.params)

    @property
    def param_set(self) -> ParameterSet:
        """The set the kernel is emitted for: the plan's (a reduction's chunk sum may need
        more margin than the kernel alone), or the kernel's own when it is not the tile's."""
        if not self.tiled:
            return self.result.params.param_set
        return BY_NAME[self.plan.chosen.param_set]


TILE_CHECK = "tile"
"""The budget's check between the spec's kernel and the tile's (:func:`compile_for`): a stop
there keeps the spec's kernel at its own size (``PORCUPINE_STOP_AT=interrupt@tile``)."""


def compile_for(
    spec: Spec,
    shape: tuple[int, ...],
    *,
    options: Options | None = None,
    budget: Budget | None = None,
    say: Callable[[str], None] = lambda _line: None,
    workers: int = 1,
    initial: Program | None = None,
) -> AppKernel:
    """Synthesize ``spec`` at its own size, choose the tile for data of ``shape`` with the
    server on ``workers`` processes (:func:`plan_application`), and synthesize the spec at
    that tile (lifted and proven at full size, as ``--param`` sizes do). ``say`` gets the
    plan's description.

    Both sizes lift the kernel of the same smallest instance, which is synthesized once
    (:func:`smallest_kernel`) and handed to each (:class:`InstanceKernel`). When ``budget``
    is over once the spec's kernel is known (a deadline, Ctrl-C), the tile's synthesis is
    not begun: the spec's kernel at its own size is the result (:attr:`AppKernel.tiled`
    false), which runs on data of any size in tiles of that size.

    ``initial``, a kernel of ``spec`` (the command line's baseline), is proven equal to it
    and handed to the budget's keeper: what a stop reports when no kernel was found before.
    It does not seed the search, so the kernels compiled for data are the compiler's own.
    Raises :class:`SynthesisError` when it is not equal to ``spec``."""
    start = time.monotonic()
    options = options or Options()
    if initial is not None and budget is not None:
        if not verify(initial, spec).ok:
            raise SynthesisError(f"the initial kernel {initial.name} is not equal to {spec.name}")
        budget.keep(spec, initial, Source.INITIAL)
    small, own = smallest_kernel(spec, options, budget)
    plan = plan_application(spec, own.program, shape, options.table, workers)
    say(plan.describe())
    target = spec.at(dict(plan.chosen.params))
    if target.n == spec.n:
        result = own
    elif budget is not None and _over(budget):
        target, result = spec, _untiled(spec, own, budget, say)
    else:
        result = synthesize(target, budget=budget, options=options, instance=small)
    # The seconds of the whole compilation, not of the last synthesis (a lift, mostly).
    result = replace(result, seconds=time.monotonic() - start)
    return AppKernel(plan=plan, spec=target, result=result)


def _over(budget: Budget) -> bool:
    """Whether ``budget`` is over at :data:`TILE_CHECK` (where tests may stop it)."""
    try:
        budget.check(TILE_CHECK)
    except OutOfBudget:
        return True
    return False


def _untiled(
    spec: Spec, own: SynthesisResult, budget: Budget, say: Callable[[str], None]
) -> SynthesisResult:
    """``own``, the spec's kernel at its own size, as the result of a compilation stopped
    before the tile's kernel: stopped, and not the optimum asked for."""
    stop = Stop.of(budget) or Stop.TIMEOUT
    by = "Ctrl-C" if stop is Stop.INTERRUPTED else "the timeout"
    sizes = ", ".join(f"{k}={v}" for k, v in spec.params)
    say(
        f"{by} stopped the work before the kernel for the chosen tile: the kernel is "
        f"{spec.name}'s at its own size ({sizes}), for tiles of that size"
    )
    scope = f"{by} stopped the work before the tile's kernel; at {sizes}: {own.optimal_scope}"
    return replace(own, optimal=False, optimal_scope=scope, stopped=stop)


def smallest_kernel(
    spec: Spec, options: Options, budget: Budget | None = None
) -> tuple[InstanceKernel | None, SynthesisResult]:
    """The kernel of ``spec``'s smallest instance, to hand to other sizes of it, and the
    kernel of ``spec``, lifted from it: the same kernels :func:`synthesize` finds, with the
    instance's found once. ``None`` for the first when the smallest instance found nothing
    (then ``spec`` was synthesized at its own size, and so will other sizes be)."""
    # A spec whose packing clauses ask for a client packing is synthesized packed, its
    # instance step on the packed spec: nothing of the spec's own to hand on.
    natural = requested(spec).name == "natural"
    smallest = smallest_instance(spec) if natural else None
    if smallest is None:  # the spec is its own smallest instance (or packed)
        own = synthesize(spec, budget=budget, options=options)
        return (InstanceKernel(spec=spec, result=own) if natural else None), own
    try:
        found = synthesize(smallest, budget=budget, options=options)
    except SynthesisError:  # as the pipeline's instance step: the spec at its own size
        return None, synthesize(spec, budget=budget, options=options)
    small = InstanceKernel(spec=smallest, result=found)
    return small, synthesize(spec, budget=budget, options=options, instance=small)
