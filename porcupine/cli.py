"""``porcupine``: the command line.

Every user error (bad syntax, bad semantics, a kernel that does not fit its spec) is printed
as one clear message on stderr with exit status 2; nothing is half-written, because every
output file is written to a temporary name and renamed into place.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from porcupine.files import write_atomically
from porcupine.synthesize import Engine, Options, SynthesisError, SynthesisResult, synthesize
from quill.cost import DEFAULT_TABLE, CostTable, Objective, load_table, program_cost
from quill.errors import QuillError
from quill.ir import Program
from quill.noise import parameters
from quill.parser import load_program
from quill.printer import format_program
from quill.spec import Spec, load_spec
from quill.verify import verify

EXIT_USAGE = 2  # bad input of any kind
EXIT_FAILED = 1  # the input was fine, but the kernel is wrong or none was found


class CliError(Exception):
    """A problem with the command line itself (a file that does not exist, say)."""


def _params(pairs: Sequence[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip() or not value.strip().lstrip("-").isdigit():
            raise CliError(f"--param expects NAME=INTEGER, got {pair!r} (e.g. --param w=64)")
        out[name.strip()] = int(value)
    return out


def _spec(args: argparse.Namespace) -> Spec:
    path = Path(args.spec)
    if not path.is_file():
        raise CliError(f"no spec file {path}")
    return load_spec(path, _params(args.param))


def _program(path_str: str) -> Program:
    path = Path(path_str)
    if not path.is_file():
        raise CliError(f"no Quill program file {path}")
    return load_program(path)


def _table(args: argparse.Namespace) -> CostTable:
    if args.costs is None:
        return DEFAULT_TABLE
    if not Path(args.costs).is_file():
        raise CliError(f"no cost table {args.costs}; make one with `porcupine calibrate -o FILE`")
    return load_table(args.costs)


class _Elapsed(logging.Formatter):
    """``[  12.3s] message``: seconds since the command started."""

    def __init__(self) -> None:
        super().__init__()
        self.start = time.monotonic()

    def format(self, record: logging.LogRecord) -> str:
        return f"[{time.monotonic() - self.start:6.1f}s] {record.getMessage()}"


def _progress(quiet: bool) -> None:
    """Progress (the ``porcupine`` logger) on stderr, unless ``quiet``."""
    logger = logging.getLogger("porcupine")
    logger.handlers.clear()
    logger.propagate = False
    if quiet:
        logger.setLevel(logging.WARNING)
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Elapsed())
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def _initial(args: argparse.Namespace, spec: Spec) -> Program | None:
    """The hand-written baseline beside the spec, if any: a verified first cost bound."""
    if args.initial:
        return _program(args.initial)
    if args.no_baseline:
        return None
    candidate = Path(args.spec).parent / "baselines" / f"{Path(args.spec).stem}.quill"
    if candidate.is_file() and not _params(args.param):
        return load_program(candidate)
    return None


def summary(result: SynthesisResult) -> str:
    """A human-readable summary of a synthesis result."""
    j = result.to_json()
    lines = [
        format_program(result.program).rstrip(),
        "",
        f"# kernel {j['kernel']}: {j['instructions']} instructions "
        f"({j['rotations']} rotations, {j['additions']} add/sub, {j['ct_pt_mults']} ct*pt, "
        f"{j['ct_ct_mults']} ct*ct, {j['relinearizations']} relinearizations), "
        f"ct*ct depth {j['mult_depth']}",
        f"# rotation keys {j['rotation_keys']}; BFV depth {j['bfv_mult_depth']}, "
        f"N = {j['ring_dim']}; estimated cost {j['cost']:.3f} ms",
        f"# verified: {str(j['verified']).lower()}; optimal: {str(j['optimal']).lower()} "
        f"({j['optimal_scope']}); {j['seconds']:.2f} s, source: {j['source']}",
    ]
    return "\n".join(lines)


def cmd_synth(args: argparse.Namespace) -> int:
    spec = _spec(args)
    table = _table(args)
    options = Options(
        table=table,
        max_components=args.max_components,
        width=args.width,
        goal=Objective(args.objective),
        engine=Engine(args.engine),
    )
    _progress(args.quiet or args.json)
    result = synthesize(spec, timeout=args.timeout, options=options, initial=_initial(args, spec))
    if args.emit == "python":
        from porcupine.backend import emit_python

        if not args.output:
            raise CliError("--emit python needs -o KERNEL.py")
        write_atomically(args.output, emit_python(result.program, spec, table))
    elif args.output:
        write_atomically(args.output, format_program(result.program))
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        print(summary(result))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    spec = _spec(args)
    program = _program(args.program)
    verdict = verify(program, spec)
    if verdict.ok:
        params = parameters(program, spec.n)
        cost = program_cost(program, params.ring_dim, _table(args))
        print(
            f"{program.name} equals {spec.name} on all {len(spec.output_slots())} output "
            f"slots that matter, for all inputs (proof by canonical polynomials); "
            f"{len(program.body)} instructions, ct*ct depth {params.ct_ct_depth}, "
            f"cost {cost:.3f} ms"
        )
        return 0
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


def cmd_emit(args: argparse.Namespace) -> int:
    from porcupine.backend import emit_python

    spec = _spec(args)
    program = _program(args.program)
    verdict = verify(program, spec)
    if not verdict.ok:
        raise CliError(
            f"{program.name} is not equal to {spec.name} (run `porcupine check` "
            "for a counterexample); only verified kernels are emitted"
        )
    write_atomically(args.output, emit_python(program, spec, _table(args)))
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from porcupine.backend import run_encrypted

    spec = _spec(args)
    if args.program:
        program = _program(args.program)
        verdict = verify(program, spec)
        if not verdict.ok:
            raise CliError(f"{program.name} is not equal to {spec.name}: not running it")
        report = run_encrypted(spec, program=program, reps=args.reps, seed=args.seed)
    elif args.kernel:
        report = run_encrypted(spec, module_path=args.kernel, reps=args.reps, seed=args.seed)
    else:
        raise CliError("run needs --program P.quill or --kernel KERNEL.py")
    print(report.summary())
    return 0 if report.ok else EXIT_FAILED


def cmd_calibrate(args: argparse.Namespace) -> int:
    from porcupine.backend import calibrate_and_save

    _progress(False)
    table = calibrate_and_save(args.output, reps=args.reps)
    for n, row in sorted(table.latency_ms.items()):
        cells = ", ".join(f"{k} {v:.3f}" for k, v in row.items())
        print(f"N = {n}: {cells} (ms)")
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


def cmd_interpret(args: argparse.Namespace) -> int:
    import numpy as np

    spec = _spec(args)
    program = _program(args.program)
    inputs = spec.random_inputs(np.random.default_rng(args.seed))
    from quill.interp import interpret

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
    return 0 if not bad else EXIT_FAILED


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="porcupine",
        description="Synthesize verified, cheapest vectorized BFV kernels from specs, "
        "and run them on OpenFHE.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def spec_args(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--param",
            action="append",
            default=[],
            metavar="NAME=INT",
            help="override a spec parameter, e.g. --param w=64 (repeatable)",
        )
        p.add_argument("--costs", metavar="FILE", help="cost table from `porcupine calibrate`")

    p = sub.add_parser("synth", help="synthesize the cheapest verified kernel for a spec")
    p.add_argument("spec")
    p.add_argument("-o", "--output", help="write the kernel (Quill, or Python with --emit)")
    p.add_argument("--emit", choices=["quill", "python"], default="quill")
    p.add_argument("--timeout", type=float, help="seconds; returns the best kernel so far")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("--max-components", type=int, default=8)
    p.add_argument("--width", type=int, default=8, help="bit-width of search examples")
    p.add_argument(
        "--objective",
        choices=[o.value for o in Objective],
        default=Objective.INSTRUCTIONS.value,
        help="instructions: fewest key switches, then instructions, then latency (default); "
        "latency: lowest estimated latency, hoisted rotations priced",
    )
    p.add_argument(
        "--engine",
        choices=[e.value for e in Engine],
        default=Engine.EXACT.value,
        help="exact: constrain the kernel's polynomial slot by slot (default); "
        "examples: constrain it on narrow example inputs",
    )
    p.add_argument("--initial", metavar="PROGRAM", help="a verified kernel to start from")
    p.add_argument(
        "--no-baseline",
        action="store_true",
        help="do not seed the search with kernels/baselines/NAME.quill",
    )
    spec_args(p)
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("check", help="prove a Quill kernel equal to a spec, or refute it")
    p.add_argument("program")
    p.add_argument("--spec", required=True)
    spec_args(p)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("emit", help="emit a verified Quill kernel as an OpenFHE Python module")
    p.add_argument("program")
    p.add_argument("--spec", required=True)
    p.add_argument("-o", "--output", required=True)
    spec_args(p)
    p.set_defaults(func=cmd_emit)

    p = sub.add_parser("run", help="run a kernel encrypted and check it against its spec")
    p.add_argument("spec")
    p.add_argument("--kernel", help="an emitted Python kernel module")
    p.add_argument("--program", help="a Quill kernel (emitted on the fly)")
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    spec_args(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("interpret", help="run a Quill kernel in plaintext against its spec")
    p.add_argument("program")
    p.add_argument("--spec", required=True)
    p.add_argument("--seed", type=int, default=0)
    spec_args(p)
    p.set_defaults(func=cmd_interpret)

    p = sub.add_parser("calibrate", help="measure the cost table on this machine (OpenFHE)")
    p.add_argument("-o", "--output", default="costs.json")
    p.add_argument("--reps", type=int, default=20)
    p.set_defaults(func=cmd_calibrate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``porcupine`` console script."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except (QuillError, CliError) as e:
        print(f"porcupine: {e}", file=sys.stderr)
        return EXIT_USAGE
    except SynthesisError as e:
        print(f"porcupine: {e}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("porcupine: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
