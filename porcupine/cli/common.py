"""Checks the commands share, done before the work: outputs, the backend, the cost table,
the depth a spec needs."""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Sequence

from porcupine.cli.errors import Failure, UsageError
from porcupine.cli.inputs import read_costs
from porcupine.files import output_problem, same_file
from porcupine.synthesize import DIRECT_SLOTS
from quill.cost import DEFAULT_TABLE, CostTable
from quill.noise import MAX_CT_CT_DEPTH
from quill.ops import Kind
from quill.spec import Spec
from quill.verify import reference

INPUT_OPTIONS = ("spec", "program", "initial", "costs", "kernel")
"""The options naming files a command reads."""


def inputs_of(args: argparse.Namespace, *more: str | None) -> list[str]:
    """The input files named on the command line, and ``more``."""
    named = [getattr(args, name, None) for name in INPUT_OPTIONS]
    return [str(p) for p in [*named, *more] if p]


def outputs_checked(outputs: Sequence[str | None], inputs: Iterable[str]) -> None:
    """Raise a :class:`UsageError` unless every output path can be written and is none of
    the ``inputs`` (writing it would destroy the source)."""
    sources = list(inputs)
    for out in outputs:
        if out is None:
            continue
        problem = output_problem(out)
        if problem:
            raise UsageError(f"-o: {problem}")
        for source in sources:
            if same_file(out, source):
                raise UsageError(f"-o {out} is also an input ({source}); write somewhere else")


def require_backend() -> None:
    """Raise a :class:`UsageError` unless the OpenFHE backend imports."""
    try:
        import porcupine.backend  # noqa: F401 - imported only to see that it can be
    except ImportError as e:
        raise UsageError(
            f"this command needs the OpenFHE backend, which cannot be imported ({e}); "
            "install it with `pip install 'porcupine[openfhe]'` (CPython 3.10)"
        ) from None


def table_of(args: argparse.Namespace) -> CostTable:
    """The cost table ``--costs`` names (checked), or the package's own."""
    return DEFAULT_TABLE if args.costs is None else read_costs(args.costs)


class _DegreeBound:
    """Upper bounds on a value's degree in the ciphertext inputs (a ScalarRing of ints)."""

    def const(self, c: int) -> int:
        return 0

    def add(self, a: int, b: int) -> int:
        return max(a, b)

    def sub(self, a: int, b: int) -> int:
        return max(a, b)

    def mul(self, a: int, b: int) -> int:
        return a + b

    def neg(self, a: int) -> int:
        return a


def check_depth(spec: Spec) -> None:
    """A :class:`Failure` when every kernel for ``spec`` needs more ct*ct depth than the
    noise model covers: no kernel could run, so there is nothing to search for."""
    most = MAX_CT_CT_DEPTH
    small = spec.at() if spec.n > DIRECT_SLOTS else spec  # what the search sees
    inputs = {d.name: [int(d.kind is Kind.CT)] * small.n for d in small.inputs}
    if max(small.evaluate(_DegreeBound(), inputs).values(), default=0) <= 1 << most:
        return
    degree = reference(small).ct_degree  # exact: bit inputs have x^2 = x
    if degree > 1 << most:
        raise Failure(
            f"spec {spec.name} has degree {degree} in its ciphertext inputs, so a kernel "
            f"needs ct*ct depth {(degree - 1).bit_length()}: more than the {most} the noise "
            "model covers (quill.noise); no kernel for it could be decrypted"
        )
