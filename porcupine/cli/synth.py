"""``porcupine synth``: search for the cheapest verified kernel, and write it.

An interrupted search prints its best verified kernel as such, and keeps an existing ``-o``
file unless ``--force``; a kernel not proven optimal that replaces a file is said to.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import z3

from porcupine.cli.common import (
    check_depth,
    inputs_of,
    outputs_checked,
    require_backend,
    table_of,
)
from porcupine.cli.errors import EXIT_INTERRUPTED, EXIT_OK, Failure, UsageError, say
from porcupine.cli.guard import Guard, peak_memory
from porcupine.cli.inputs import input_file, read_program, read_spec
from porcupine.cli.kept import STOPS, kept_result, watch
from porcupine.cli.report import (
    as_json,
    check_kernel_ranges,
    check_spec_ranges,
    noise_checked,
    noise_failure,
    scope_text,
    summary,
)
from porcupine.cli.values import params
from porcupine.files import write_atomically
from porcupine.outcomes import Layout, Stop
from porcupine.synthesize import (
    Engine,
    NoiseBudgetError,
    Options,
    SynthesisError,
    SynthesisResult,
    synthesize,
)
from quill.cost import CostTable, Objective
from quill.ir import Program
from quill.params import ParameterSet
from quill.printer import format_program
from quill.spec import Spec

if TYPE_CHECKING:
    from porcupine.app_plan import AppKernel

MEMORY_MARGIN = 8
"""Within 1/MEMORY_MARGIN of ``--max-memory`` the solver may have failed to allocate and
answered "unknown", which the search cannot tell from a finished proof."""


class _Elapsed(logging.Formatter):
    """``[  12.3s] message``: seconds since the command started."""

    def __init__(self, start: float) -> None:
        super().__init__()
        self.start = start

    def format(self, record: logging.LogRecord) -> str:
        return f"[{time.monotonic() - self.start:6.1f}s] {record.getMessage()}"


def progress(quiet: bool, start: float) -> None:
    """Progress (the ``porcupine`` logger) on stderr, unless ``quiet``."""
    logger = logging.getLogger("porcupine")
    logger.handlers.clear()
    logger.propagate = False
    if quiet:
        logger.setLevel(logging.WARNING)
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Elapsed(start))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def _baseline(args: argparse.Namespace) -> str | None:
    """The kernel to start from: ``--initial``, else the hand-written baseline beside the
    spec (``baselines/NAME.quill``) unless ``--no-baseline`` or ``--param`` is given."""
    if args.initial:
        return str(args.initial)
    candidate = Path(args.spec).parent / "baselines" / f"{Path(args.spec).stem}.quill"
    try:
        found = candidate.is_file()
    except OSError:  # e.g. a name too long once ".quill" is added
        found = False
    return str(candidate) if found and not (args.no_baseline or args.param) else None


def cmd_synth(args: argparse.Namespace, guard: Guard) -> int:
    """Check everything, synthesize under the guard's budget, check the kernel's noise and
    ranges, write ``-o`` and print the kernel with its summary (or JSON)."""
    if args.emit == "python" and not args.output:
        raise UsageError("--emit python writes a Python module: give -o KERNEL.py")
    input_file(args.spec, "spec file")  # a usable path before the baseline is looked for
    baseline = _baseline(args)
    outputs_checked([args.output], inputs_of(args, baseline))
    if args.emit == "python":
        require_backend()
    if args.for_shape and (args.param or Layout(args.layout) is not Layout.GIVEN):
        raise UsageError(
            "--for chooses the tile (the spec's size) for the data: do not also give --param "
            "(which fixes it) or --layout"
        )
    with guard.work("reading the spec"):
        spec = read_spec(args.spec, params(args.param))
        table = table_of(args)
        initial = None if baseline is None else read_program(baseline, "initial kernel")
        if initial is not None:
            noise_checked(initial, spec, "the initial kernel")
        check_depth(spec)
        exact = check_spec_ranges(spec, strict=args.strict_ranges)
    options = Options(
        table=table,
        max_components=args.max_components,
        max_keys=args.max_rotation_keys,
        width=args.width,
        goal=Objective(args.objective),
        engine=Engine(args.engine),
    )
    progress(args.quiet or args.json, guard.start)
    param_set = None
    # What a forced stop reports (cli.kept); under --for, the spec's kernel at its own size.
    watch(guard.budget, spec, options)
    synthesizing = time.monotonic()
    try:
        with guard.work("synthesizing", graceful=True):
            if args.for_shape:
                compiled = _compiled_for(args, spec, options, guard, initial)
                spec, result, param_set = compiled.spec, compiled.result, compiled.param_set
            else:
                layout = Layout(args.layout)  # one of the parser's choices
                result = synthesize(
                    spec, budget=guard.budget, options=options, initial=initial, layout=layout
                )
    except NoiseBudgetError as e:
        raise noise_failure(e.cause, e.program, "the kernel found") from None
    except SynthesisError as e:
        guard.hold(e)
        kept = _kept(spec, options, guard, synthesizing) if guard.budget.over else None
        if kept is not None:
            result = kept
        elif guard.budget.cancelled:
            say(str(e))
            return EXIT_INTERRUPTED
        else:
            raise Failure(str(e)) from None
    except BaseException as e:  # stopped by force, or out of memory: the kernel kept, if any
        guard.hold(e)
        stop = guard.forced or ("memory" if _out_of_memory(e) else None)
        if stop is None or (kept := _kept(spec, options, guard, synthesizing, stop)) is None:
            raise
        say(f"{STOPS[stop]} stopped the work while it could not stop itself; reporting the "
            "best verified kernel found before")  # fmt: skip
        result = kept
        guard.forced = None  # handled: a later error is reported as itself
    if args.for_shape and param_set is None:  # stopped: the kernel kept at the spec's size
        say(f"--for: the kernel is {spec.name}'s at its own size, for tiles of that size")
    result = _memory_honest(result, guard)
    check_kernel_ranges(spec, result.program, strict=args.strict_ranges, output_exact=exact)
    if args.output:
        _write(args, result, spec, table, param_set)
    print(json.dumps(as_json(result), indent=2) if args.json else summary(result))
    return EXIT_INTERRUPTED if guard.budget.cancelled else EXIT_OK


def _kept(
    spec: Spec, options: Options, guard: Guard, since: float, stop: str | None = None
) -> SynthesisResult | None:
    """The kernel the budget kept (:mod:`porcupine.cli.kept`), stopped by ``stop`` (by
    default, what ended the budget)."""
    why = stop or guard.budget.stop_reason() or "timeout"
    try:
        return kept_result(spec, options, guard.budget, why, time.monotonic() - since)
    except NoiseBudgetError as e:
        guard.forced = None  # handled: reported as the kernel over the noise budget
        raise noise_failure(e.cause, e.program, f"the kernel found before {STOPS[why]}") from None


def _out_of_memory(e: BaseException) -> bool:
    return isinstance(e, MemoryError) or (
        isinstance(e, z3.Z3Exception) and "memory" in str(e).lower()
    )


def _memory_honest(result: SynthesisResult, guard: Guard) -> SynthesisResult:
    """``result``, not claimed optimal if memory came close to the limit: there the solver
    may have answered "unknown" for want of memory, which looks like a finished search."""
    peak = peak_memory()
    limit = guard.max_memory
    if not result.optimal or peak is None or limit is None:
        return result
    if peak < limit - limit // MEMORY_MARGIN:
        return result
    return replace(
        result,
        optimal=False,
        optimal_scope="not proven: memory came close to --max-memory, where the solver may "
        "have given up",
    )


def _compiled_for(
    args: argparse.Namespace,
    spec: Spec,
    options: Options,
    guard: Guard,
    initial: Program | None,
) -> AppKernel:
    """``--for``: the kernel compiled for data of ``args.for_shape`` (:func:`compile_for`;
    the initial kernel is what a stop reports if nothing better was found)."""
    from porcupine.app_plan import NoTile, compile_for  # the backend's tiling: --for only

    shape = args.for_shape
    try:
        return compile_for(
            spec,
            shape,
            options=options,
            budget=guard.budget,
            say=(lambda _: None) if args.quiet else say,
            initial=initial,
        )
    except NoTile as e:
        raise UsageError(f"--for {'x'.join(map(str, shape))}: {e}") from None


def _write(
    args: argparse.Namespace,
    result: SynthesisResult,
    spec: Spec,
    table: CostTable,
    param_set: ParameterSet | None = None,
) -> None:
    """Write the kernel to ``-o``; an interrupted search keeps an existing file unless
    ``--force``, and replacing a file with a kernel not proven optimal is said."""
    path = args.output
    existed = os.path.exists(path)
    if existed and result.stopped is Stop.INTERRUPTED and not args.force:
        say(
            f"interrupted: kept the existing {path}; the kernel printed is not proven optimal "
            "(--force replaces the file with it)"
        )
        return
    write_atomically(path, _text(args, result, spec, table, param_set))
    note = "" if result.optimal else f" (a kernel not proven optimal: {scope_text(result)})"
    say(f"{'replaced' if existed else 'wrote'} {path}{note}")


def _text(
    args: argparse.Namespace,
    result: SynthesisResult,
    spec: Spec,
    table: CostTable,
    param_set: ParameterSet | None = None,
) -> str:
    """The kernel as written to ``-o``: Quill, or the Python module, which under a client
    packing takes the spec's inputs and gathers the packing's ciphertexts itself."""
    if args.emit != "python":
        return format_program(result.program)
    from porcupine.backend import EmitOptions, emit_python

    how = EmitOptions(table=table, packing=result.packing, param_set=param_set)
    return emit_python(result.program, spec, how)
