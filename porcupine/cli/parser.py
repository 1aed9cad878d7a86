"""The command line's grammar: every option with a type that checks its value.

The arguments are parsed before anything else is imported: a command's options are added
when it is the command given (:class:`Commands`), and its function is imported when it runs
(:class:`Handler`). So ``porcupine --help``, a usage error, or ``synth`` import neither the
OpenFHE backend nor the application planning that other commands need.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from porcupine.cli import values
from porcupine.cli.errors import EPILOG

if TYPE_CHECKING:
    from porcupine.cli.guard import Guard

MAX_REPS = 10_000
MAX_SEED = 2**32 - 1


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--timeout",
        type=values.seconds,
        metavar="SECONDS",
        help="stop the whole command after this long (synth: returns the best kernel so far)",
    )
    p.add_argument(
        "--max-memory",
        type=values.memory,
        metavar="SIZE",
        help="memory limit such as 4G or 512M (default: half of this machine's memory)",
    )


def _spec_args(p: argparse.ArgumentParser, *, costs: bool = True) -> None:
    p.add_argument(
        "--param",
        action="append",
        default=[],
        type=values.param,
        metavar="NAME=INT",
        help="override a spec parameter, e.g. --param w=64 (repeatable)",
    )
    if costs:
        p.add_argument("--costs", metavar="FILE", help="cost table from `porcupine calibrate`")


def _strict(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--strict-ranges",
        action="store_true",
        help="refuse (exit 1) when a value may wrap mod t for inputs in their declared "
        "ranges, instead of warning",
    )


def _synth(p: argparse.ArgumentParser) -> None:
    # The synthesizer's enums name the choices: imported when synth is the command given.
    from porcupine.options import Engine, Options
    from quill.cost import Objective

    p.add_argument("spec")
    p.add_argument("-o", "--output", help="write the kernel (Quill, or Python with --emit)")
    p.add_argument("--emit", choices=["quill", "python"], default="quill")
    p.add_argument(
        "--force",
        action="store_true",
        help="let an interrupted search replace an existing -o file",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("--max-components", type=values.count(1, 64, "components"), default=8)
    p.add_argument(
        "--max-rotation-keys",
        type=values.count(0, 4096, "rotation keys"),
        default=None,
        metavar="K",
        help="kernels need at most K rotation keys (clients generate and upload every key)",
    )
    p.add_argument(
        "--width", type=values.count(2, 31, "bits"), default=8, help="bits of search examples"
    )
    p.add_argument(
        "--objective",
        choices=[o.value for o in Objective],
        default=Options().goal.value,
        help="latency: lowest estimated latency on OpenFHE, as emitted (default); "
        "instructions: fewest key switches, then instructions (the Porcupine paper's measure)",
    )
    p.add_argument(
        "--layout",
        choices=["given", "padded", "search"],
        default="given",
        help="given: pack the inputs as the spec says (default); padded: as the spec says, "
        "zero padded to up to 8x the slots when the spare slots make the kernel cheaper (no "
        "element moves); search: also try the client packings the compiler knows (padded "
        "included) and keep the cheapest",
    )
    p.add_argument(
        "--engine",
        choices=[e.value for e in Engine],
        default=Options().engine.value,
        help="how the search learns from wrong candidates (default %(default)s)",
    )
    p.add_argument(
        "--for",
        dest="for_shape",
        type=values.shape,
        metavar="SHAPE",
        help="compile for data of this shape (e.g. 512x512): choose the tile and ring that "
        "cost least for it (said on stderr) and synthesize the spec at that tile",
    )
    p.add_argument("--initial", metavar="PROGRAM", help="a verified kernel to start from")
    p.add_argument(
        "--no-baseline",
        action="store_true",
        help="do not seed the search with kernels/baselines/NAME.quill",
    )
    _spec_args(p)
    _strict(p)


def _check(p: argparse.ArgumentParser) -> None:
    p.add_argument("program")
    p.add_argument("--spec", required=True)
    _spec_args(p)
    _strict(p)


def _emit(p: argparse.ArgumentParser) -> None:
    p.add_argument("program")
    p.add_argument("--spec", required=True)
    p.add_argument("-o", "--output", required=True)
    _spec_args(p)
    _strict(p)


def _run(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--kernel", help="an emitted Python kernel module")
    which.add_argument("--program", help="a Quill kernel (emitted on the fly)")
    p.add_argument("--reps", type=values.count(1, MAX_REPS, "repetitions"), default=10)
    p.add_argument("--seed", type=values.count(0, MAX_SEED, "seed"), default=0)
    p.add_argument(
        "--input",
        action="append",
        metavar="NAME=FILE",
        help="run on this data (.npy or grayscale .png, any size; once per input), client and "
        "server in separate processes, checked against the spec on the whole input",
    )
    p.add_argument("--output", metavar="FILE", help="with --input: write the result (.npy or .png)")
    _spec_args(p)


def _interpret(p: argparse.ArgumentParser) -> None:
    p.add_argument("program")
    p.add_argument("--spec", required=True)
    p.add_argument("--seed", type=values.count(0, MAX_SEED, "seed"), default=0)
    _spec_args(p, costs=False)  # nothing is priced


def _calibrate(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", default="costs.json")
    p.add_argument("--reps", type=values.count(1, MAX_REPS, "repetitions"), default=20)


@dataclass(frozen=True)
class Handler:
    """A command's function (``function`` in ``module``), imported when the command runs."""

    module: str
    function: str

    def __call__(self, args: argparse.Namespace, guard: Guard) -> int:
        run = getattr(importlib.import_module(self.module), self.function)
        code: int = run(args, guard)
        return code


@dataclass(frozen=True)
class Command:
    """One command: its name, what it does, its options and the function that runs it."""

    name: str
    help: str
    options: Callable[[argparse.ArgumentParser], None]
    handler: Handler


COMMANDS = (
    Command(
        name="synth",
        help="synthesize the cheapest verified kernel for a spec",
        options=_synth,
        handler=Handler("porcupine.cli.synth", "cmd_synth"),
    ),
    Command(
        name="check",
        help="prove a Quill kernel equal to a spec, or refute it",
        options=_check,
        handler=Handler("porcupine.cli.commands", "cmd_check"),
    ),
    Command(
        name="emit",
        help="emit a verified Quill kernel as an OpenFHE Python module",
        options=_emit,
        handler=Handler("porcupine.cli.commands", "cmd_emit"),
    ),
    Command(
        name="run",
        help="run a kernel encrypted and check it against its spec",
        options=_run,
        handler=Handler("porcupine.cli.commands", "cmd_run"),
    ),
    Command(
        name="interpret",
        help="run a Quill kernel in plaintext against its spec",
        options=_interpret,
        handler=Handler("porcupine.cli.commands", "cmd_interpret"),
    ),
    Command(
        name="calibrate",
        help="measure the cost table on this machine (OpenFHE)",
        options=_calibrate,
        handler=Handler("porcupine.cli.commands", "cmd_calibrate"),
    ),
)
"""Every command, in the order ``--help`` lists them."""


class Commands(argparse._SubParsersAction):  # type: ignore[type-arg]
    """The subcommands, each one's options added when it is the command given (only then
    are the modules its options name imported)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pending: dict[str, Command] = {}

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        arguments: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        name = arguments[0] if isinstance(arguments, Sequence) and arguments else None
        command = self.pending.pop(str(name), None)
        if command is not None:
            sub = self._name_parser_map[command.name]
            _common(sub)
            command.options(sub)
            sub.set_defaults(func=command.handler)
        super().__call__(parser, namespace, arguments, option_string)


def build_parser() -> argparse.ArgumentParser:
    """The ``porcupine`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="porcupine",
        description="Synthesize verified, cheapest vectorized BFV kernels from specs, "
        "and run them on OpenFHE.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", action=Commands)
    assert isinstance(sub, Commands)
    for command in COMMANDS:
        sub.add_parser(
            command.name,
            help=command.help,
            description=command.help,
            epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub.pending[command.name] = command
    return parser
