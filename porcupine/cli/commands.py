"""``porcupine check``, ``emit``, ``run``, ``interpret`` and ``calibrate``."""

from __future__ import annotations

import argparse
import sys

import numpy as np

from porcupine.cli.app import cmd_run_app
from porcupine.cli.common import inputs_of, outputs_checked, require_backend, table_of
from porcupine.cli.errors import EXIT_FAILED, EXIT_OK, Failure, UsageError, say
from porcupine.cli.guard import Guard
from porcupine.cli.inputs import read_program, read_spec
from porcupine.cli.kernel_file import check_kernel_module
from porcupine.cli.packed import packing_for
from porcupine.cli.report import (
    check_kernel_ranges,
    check_spec_ranges,
    noise_checked,
    noise_failure,
)
from porcupine.cli.synth import progress
from porcupine.cli.values import params
from porcupine.files import replacing, write_atomically
from porcupine.layouts.packing import Packing
from quill.cost import CostTable, program_cost
from quill.interp import interpret
from quill.ir import Program
from quill.noise import NoiseBudgetExceeded
from quill.spec import Spec
from quill.verify import check_signature, verify


def _read(args: argparse.Namespace, guard: Guard) -> tuple[Spec, Program]:
    """The spec and the Quill program the arguments name; the program must take the spec's
    inputs."""
    with guard.work("reading the spec and the kernel"):
        spec = read_spec(args.spec, params(args.param))
        program = read_program(args.program)
        check_signature(program, spec)
    return spec, program


def _verified(
    args: argparse.Namespace, guard: Guard, why: str
) -> tuple[Spec, Program, Packing | None]:
    """The spec, the program proven equal to it and the client packing it was synthesized
    under (None: the spec's own inputs; see :mod:`porcupine.cli.packed`); a wrong program
    is a :class:`Failure` (``why``: what is not done with it)."""
    with guard.work("reading the spec and the kernel"):
        spec = read_spec(args.spec, params(args.param))
        program = read_program(args.program)
    with guard.work("checking the kernel against the spec"):
        packing = packing_for(spec, program)  # a packing's kernel is proven equal to it here
        verdict = verify(program, spec) if packing is None else None
    if verdict is not None and not verdict.ok:
        raise Failure(
            f"{program.name} is not equal to {spec.name} (`porcupine check` shows a "
            f"counterexample): {why}"
        )
    return spec, program, packing


def cmd_check(args: argparse.Namespace, guard: Guard) -> int:
    """Prove a kernel equal to its spec, or print a counterexample."""
    table = table_of(args)
    with guard.work("reading the spec and the kernel"):
        spec = read_spec(args.spec, params(args.param))
        program = read_program(args.program)
    with guard.work("checking the kernel against the spec"):
        packing = packing_for(spec, program)
        verdict = verify(program, spec if packing is None else packing.spec)
    if packing is not None:
        return _checked_packed(args, spec, program, packing, table)
    if not verdict.ok:
        cex = verdict.counterexample
        assert cex is not None
        print(
            f"{program.name} differs from {spec.name} at slot {cex.slot}: spec gives "
            f"{cex.expected}, kernel gives {cex.got}, on inputs:",
            file=sys.stderr,
        )
        for name, vec in cex.inputs.items():
            print(f"  {name} = {[int(v) for v in vec]}", file=sys.stderr)
        return EXIT_FAILED
    bfv = noise_checked(program, spec)
    exact = check_spec_ranges(spec, strict=args.strict_ranges)
    check_kernel_ranges(spec, program, strict=args.strict_ranges, output_exact=exact)
    print(
        f"{program.name} equals {spec.name} on all {len(spec.output_slots())} output "
        f"slots that matter, for all inputs (proof by canonical polynomials); "
        f"{len(program.body)} instructions, ct*ct depth {bfv.ct_ct_depth}, "
        f"cost {program_cost(program, bfv.param_set, table):.3f} ms"
    )
    return EXIT_OK


def _checked_packed(
    args: argparse.Namespace, spec: Spec, program: Program, packing: Packing, table: CostTable
) -> int:
    """``check``'s report for a kernel proven equal to a client packing of the spec."""
    bfv = noise_checked(program, packing.spec)
    exact = check_spec_ranges(spec, strict=args.strict_ranges)
    check_kernel_ranges(packing.spec, program, strict=args.strict_ranges, output_exact=exact)
    print(
        f"{program.name} equals {spec.name} on all {len(spec.output_slots())} output "
        f"slots that matter, for all inputs, under the client packing {packing.name} "
        f"(proof by canonical polynomials; the packing is proven equal to the spec); "
        f"{len(program.body)} instructions, ct*ct depth {bfv.ct_ct_depth}, "
        f"cost {program_cost(program, bfv.param_set, table):.3f} ms"
    )
    return EXIT_OK


def cmd_emit(args: argparse.Namespace, guard: Guard) -> int:
    """Emit a verified Quill kernel as an OpenFHE Python module."""
    outputs_checked([args.output], inputs_of(args))
    require_backend()
    from porcupine.backend import EmitOptions, emit_python

    table = table_of(args)
    spec, program, packing = _verified(args, guard, "only verified kernels are emitted")
    exact = check_spec_ranges(spec, strict=args.strict_ranges)
    kernel_spec = spec if packing is None else packing.spec
    check_kernel_ranges(kernel_spec, program, strict=args.strict_ranges, output_exact=exact)
    try:
        text = emit_python(program, spec, EmitOptions(table=table, packing=packing))
    except NoiseBudgetExceeded as e:
        raise noise_failure(e, program) from None
    write_atomically(args.output, text)
    say(f"wrote {args.output}")
    return EXIT_OK


def cmd_run(args: argparse.Namespace, guard: Guard) -> int:
    """Run a kernel encrypted and compare it with the spec."""
    require_backend()
    from porcupine.backend import EmitOptions, run_encrypted

    if args.input:
        if args.program:
            raise UsageError(
                "--input runs an emitted module (--kernel M.py), or without "
                "--kernel one compiled for the inputs' size; not --program"
            )
        return cmd_run_app(args, guard)
    if args.output:
        raise UsageError("--output writes the result of a run on --input data")
    if not args.kernel and not args.program:
        raise UsageError("give the kernel: --kernel M.py or --program K.quill (or --input data)")
    table = table_of(args)
    if args.program:
        spec, program, packing = _verified(args, guard, "not running it")
        noise_checked(program, spec if packing is None else packing.spec)
        with guard.work("running the kernel encrypted"):
            how = EmitOptions(table=table, packing=packing)
            report = run_encrypted(
                spec, program=program, reps=args.reps, seed=args.seed, options=how
            )
    else:
        with guard.work("reading the spec"):
            spec = read_spec(args.spec, params(args.param))
            check_kernel_module(args.kernel, spec)
        try:
            with guard.work("running the kernel encrypted"):
                report = run_encrypted(
                    spec,
                    module_path=args.kernel,
                    reps=args.reps,
                    seed=args.seed,
                    options=EmitOptions(table=table),
                )
        except MemoryError:
            raise
        except Exception as e:  # the module's own code failed: it is the kernel that is wrong
            raise Failure(f"running {args.kernel} failed: {type(e).__name__}: {e}") from None
    print(report.summary())
    return EXIT_OK if report.ok else EXIT_FAILED


def cmd_interpret(args: argparse.Namespace, guard: Guard) -> int:
    """Run a kernel in plaintext on random inputs and compare it with the spec."""
    spec, program = _read(args, guard)
    with guard.work("interpreting the kernel"):
        inputs = spec.random_inputs(np.random.default_rng(args.seed))
        got = interpret(program, {p.name: inputs[p.name] for p in program.params})
        want = spec.reference(inputs)
    bad = [s for s in spec.output_slots() if int(got[s]) != want[s]]
    for name, vec in inputs.items():
        print(f"{name} = {[int(v) for v in vec]}")
    print(f"{program.name} -> {[int(v) for v in got]}")
    print(
        f"spec {spec.name} at the {len(want)} slots that matter: "
        + ("equal" if not bad else f"DIFFERENT at slots {bad}")
    )
    return EXIT_OK if not bad else EXIT_FAILED


def cmd_calibrate(args: argparse.Namespace, guard: Guard) -> int:
    """Measure the cost table on this machine and write it."""
    outputs_checked([args.output], [])
    require_backend()
    from porcupine.backend import calibrate_and_save

    progress(False, guard.start)
    with guard.work("calibrating"), replacing(args.output) as tmp:
        table = calibrate_and_save(tmp, reps=args.reps)
    for n, row in sorted(table.latency_ms.items()):
        cells = ", ".join(f"{k} {v:.3f}" for k, v in row.items())
        print(f"N = {n}: {cells} (ms)")
    say(f"wrote {args.output}")
    return EXIT_OK
