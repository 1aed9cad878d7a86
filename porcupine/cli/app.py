"""``porcupine run SPEC --kernel M.py --input NAME=FILE``: the kernel as an application runs
it, on data of any size, client and server in two processes, checked element by element
against the spec's reference on the whole input."""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from porcupine.app_plan import NoTile, compile_for
from porcupine.cli.common import inputs_of, outputs_checked, table_of
from porcupine.cli.errors import EXIT_FAILED, EXIT_OK, Failure, UsageError, say
from porcupine.cli.guard import Guard
from porcupine.cli.inputs import read_spec
from porcupine.cli.kernel_file import check_kernel_module, kernel_params
from porcupine.cli.synth import progress
from porcupine.cli.values import params
from porcupine.files import replacing
from porcupine.synthesize import Options
from quill.ops import Kind
from quill.slots import T
from quill.spec import Spec
from quill.spec_array import reference_array
from quill.spec_shapes import shape_params

READERS = (".npy", ".png")


def read_input(item: str) -> tuple[str, npt.NDArray[np.int64]]:
    """``NAME=FILE`` as the input's name and its values: a .npy array of integers, or a
    grayscale .png (8 or 16 bits). Raises :class:`UsageError` saying what is wrong."""
    name, sep, path = item.partition("=")
    if not sep or not name or not path:
        raise UsageError(f"--input {item!r}: write NAME=FILE, e.g. --input x=photo.png")
    file = Path(path)
    if file.suffix.lower() not in READERS:
        raise UsageError(f"--input {name}={path}: a .npy or .png file, not {file.suffix!r}")
    if not file.is_file():
        raise UsageError(f"--input {name}={path}: no such file")
    values = _read_png(name, file) if file.suffix.lower() == ".png" else _read_npy(name, file)
    if values.size == 0:
        raise UsageError(f"--input {name}={path} is empty: give at least one element")
    return name, values


def _read_npy(name: str, file: Path) -> npt.NDArray[np.int64]:
    try:
        array = np.load(file, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise UsageError(f"--input {name}={file}: not a .npy array ({e})") from None
    if array.dtype.kind not in "biu":
        raise UsageError(
            f"--input {name}={file} holds {array.dtype} values: the kernel takes integers "
            "(convert them first, e.g. np.rint(a).astype(np.int64))"
        )
    return np.asarray(array, dtype=np.int64)


def _read_png(name: str, file: Path) -> npt.NDArray[np.int64]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(file) as image:
            mode, data = image.mode, np.asarray(image)
    except (UnidentifiedImageError, OSError) as e:
        raise UsageError(f"--input {name}={file}: not a PNG image ({e})") from None
    if mode not in ("L", "I;16", "I", "1"):
        raise UsageError(
            f"--input {name}={file} is a {mode} image ({data.shape[-1] if data.ndim == 3 else 1} "
            "channels): the kernel takes one grayscale channel; convert it first (e.g. "
            "Pillow's image.convert('L'))"
        )
    return np.asarray(data, dtype=np.int64)


@dataclass(frozen=True)
class Verdict:
    """The decrypted output against the spec's reference on the whole input."""

    checked: int  # elements that matter
    wrong: int
    first: tuple[tuple[int, ...], int, int] | None  # (index, expected, got)

    @property
    def ok(self) -> bool:
        return self.wrong == 0 and self.checked > 0


def compare(spec: Spec, inputs: Mapping[str, Any], output: Any) -> Verdict:
    """Every output element that matters for ``spec`` at the inputs' size, against ours."""
    shapes = {name: np.shape(values) for name, values in inputs.items()}
    reference = reference_array(spec.origin.source, shape_params(spec, shapes), inputs)
    want = reference.values
    got = np.asarray(np.ma.filled(output, 0))  # type: ignore[no-untyped-call]
    masked = np.asarray(np.ma.getmaskarray(output))  # type: ignore[no-untyped-call]
    bad = reference.matters & (masked | (np.asarray(got, dtype=np.int64) % T != want))
    first = None
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        first = (index, int(want[index]), int(np.asarray(got)[index]))
    return Verdict(int(reference.matters.sum()), int(bad.sum()), first)


def write_output(path: str, output: Any) -> None:
    """``output`` as .npy (exact residues; don't-care elements 0) or .png (8-bit: exact when
    every value lies in 0..255, else residues centred and scaled, which is said)."""
    data = np.asarray(np.ma.filled(output, 0))  # type: ignore[no-untyped-call]
    if path.lower().endswith(".png") and data.ndim != 2:
        raise UsageError(f"--output {path}: only an image output can be a .png; use .npy")
    with replacing(path) as tmp:
        if path.lower().endswith(".npy"):
            with tmp.open("wb") as out:
                np.save(out, data)
            return
        from PIL import Image

        if data.min() < 0 or data.max() > 255:
            centred = np.where(data > T // 2, data - T, data)
            low, high = int(centred.min()), int(centred.max())
            data = (centred - low) * 255 // max(1, high - low)
            say(f"{path}: values outside 0..255, scaled from {low}..{high} (a .npy is exact)")
        Image.fromarray(data.astype(np.uint8), mode="L").save(tmp, format="PNG")


def cmd_run_app(args: argparse.Namespace, guard: Guard) -> int:
    """``run --input``: the emitted module (``--kernel``, or one compiled for the inputs'
    size) as client and server on the given data."""
    if args.output and Path(args.output).suffix.lower() not in READERS:
        raise UsageError(f"--output {args.output}: write a .npy or .png file")
    inputs_checked = [*inputs_of(args), *(item.partition("=")[2] for item in args.input)]
    outputs_checked([args.output], inputs_checked)
    with guard.work("reading the spec, the kernel and the inputs"):
        sized = params(args.param) or (kernel_params(args.kernel) if args.kernel else {})
        spec = read_spec(args.spec, sized)
        if args.kernel:
            check_kernel_module(args.kernel, spec)
        given = dict(read_input(item) for item in args.input)
    kinds = {d.name: d.kind for d in spec.inputs}
    unknown = sorted(set(given) - set(kinds))
    missing = sorted(set(kinds) - set(given))
    if unknown or missing:
        raise UsageError(
            f"spec {spec.name} takes inputs {sorted(kinds)}: "
            + (f"no input {unknown}" if unknown else f"give --input for {missing}")
        )
    cts = {n: v for n, v in given.items() if kinds[n] is Kind.CT}
    pts = {n: v for n, v in given.items() if kinds[n] is Kind.PT}
    with tempfile.TemporaryDirectory(prefix="porcupine-kernel-") as folder:
        kernel = args.kernel or _compiled(args, guard, spec, cts, Path(folder))
        return _run(args, guard, spec, kernel, given, cts, pts)


def _compiled(
    args: argparse.Namespace,
    guard: Guard,
    spec: Spec,
    cts: Mapping[str, Any],
    folder: Path,
) -> str:
    """No ``--kernel``: the kernel compiled for the inputs' size (tile and ring chosen,
    said on stderr), emitted into ``folder``."""
    from porcupine.backend import EmitOptions, emit_python

    shape = next(iter(np.shape(v) for v in cts.values()))
    options = Options(table=table_of(args))
    progress(False, guard.start)
    try:
        with guard.work("synthesizing the kernel for the inputs' size"):
            compiled = compile_for(
                spec, shape, options=options, budget=guard.budget, say=say, workers=_cores()
            )
    except NoTile as e:
        raise UsageError(f"the inputs cannot be tiled for {spec.name}: {e}") from None
    path = folder / f"{spec.name}.py"
    path.write_text(
        emit_python(
            compiled.result.program,
            compiled.spec,
            EmitOptions(table=options.table, param_set=compiled.param_set),
        )
    )
    return str(path)


def _cores() -> int:
    """The server's workers (its default: the machine's cores), for the tile choice."""
    return os.cpu_count() or 1


def _run(
    args: argparse.Namespace,
    guard: Guard,
    spec: Spec,
    kernel: str,
    given: Mapping[str, Any],
    cts: Mapping[str, Any],
    pts: Mapping[str, Any],
) -> int:
    """Client and server on ``kernel``, the result checked and reported."""
    from porcupine.backend.app_run import ServerFailed, run_two_party

    try:
        with guard.work("running client and server"):
            run = run_two_party(kernel, cts, pts)
    except (ValueError, TypeError) as e:  # the inputs do not fit the kernel
        raise UsageError(f"the inputs do not fit kernel {args.kernel}: {e}") from None
    except ServerFailed as e:
        raise Failure(f"the server refused the request: {e}") from None
    with guard.work("checking every output element against the spec"):
        verdict = compare(spec, given, run.output)
    print(
        f"{run.kernel}: {run.ciphertexts} ciphertexts per input at {run.parameter_set} "
        f"(N = {run.ring_dim}); client and server in separate processes"
    )
    print(run.stages())
    if verdict.ok:
        print(f"correct: all {verdict.checked} output elements that matter equal the spec's")
    else:
        where = ""
        if verdict.first is not None:
            index, want, got = verdict.first
            where = f"; first at {index}: spec {want}, decrypted {got}"
        print(f"WRONG: {verdict.wrong} of {verdict.checked} output elements differ{where}")
    if args.output:
        write_output(args.output, run.output)
        say(f"wrote {args.output}")
    return EXIT_OK if verdict.ok else EXIT_FAILED
