"""The applications benchmark (issue 21): kernels compiled for real data sizes, client and
server in separate processes, side by side with the hand-written OpenFHE application.

    python -m eval.apps [--reps 3] [--out eval] [--kernels DIR]

1. **The photo** (scikit-image's 512x512 ``camera``, 8-bit) through box blur, gx, Sobel and
   Harris: ours (compiled for the image's size, :mod:`eval.apps_runs`) against
   :func:`eval.handwritten_app.run`, interleaved: every repetition runs each kernel's two
   sides back to back, the order alternating between repetitions.
2. **Reductions** over n = 10^6: dot product and Hamming distance compiled for (n,).
3. **Instances**: 10,000 independent length-8 dot products, batched into few ciphertexts
   against one ciphertext per instance (:mod:`eval.apps_instances`), interleaved alike.

Writes ``apps.md`` and ``apps.json`` (every run's raw figures) into ``--out``. Every result is
checked (photo pixel-exact against the spec's reference, the rest against numpy mod t); the
exit status is 1 when any is wrong. ``--kernels DIR`` keeps the emitted modules and reuses
them in later runs (keyed by the spec's text and the data's shape; Harris at 512x512 takes
minutes to synthesize); without it every kernel is compiled in this run.
"""

from __future__ import annotations

import os

os.environ["OMP_NUM_THREADS"] = "1"  # before openfhe is imported: one thread per process

import argparse
import hashlib
import json
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eval.apps_report import AppsResults, Compiled, write_report
from eval.apps_runs import (
    Sample,
    instance_inputs,
    ours_instances,
    ours_photo,
    ours_reduction,
    per_instance,
    reduction_inputs,
    theirs_photo,
)
from eval.machine import machine_info
from examples.photo import camera
from porcupine.app_plan import compile_for
from porcupine.backend import EmitOptions, emit_python
from porcupine.backend.sections import RuntimeText, application_sections
from porcupine.synthesize import synthesize
from quill.spec import Spec, load_spec

ROOT = Path(__file__).resolve().parent.parent
KERNELS = ROOT / "kernels"
PHOTO_KERNELS = ("box_blur", "gx", "sobel", "harris")
REDUCTIONS = ("dot_product", "hamming_distance")


@dataclass(frozen=True, kw_only=True)
class Config:
    """What to measure: the defaults are the full benchmark."""

    reps: int = 3
    crop: tuple[int, int] | None = None  # the photo's top-left corner only
    photo_kernels: tuple[str, ...] = PHOTO_KERNELS
    reduction_n: int = 1_000_000
    instances: int = 10_000
    instance_n: int = 8
    kernels_dir: Path | None = None  # keep and reuse the emitted modules here
    seed: int = 1


def _say(line: str) -> None:
    print(f"[apps] {line}", file=sys.stderr, flush=True)


def load_average() -> tuple[float, float, float]:
    """The 1/5/15-minute load averages (zeros where the OS has none)."""
    try:
        return os.getloadavg()
    except OSError:
        return (0.0, 0.0, 0.0)


def compile_kernel(
    name: str, shape: tuple[int, ...] | None, folder: Path, reuse: bool, own: int = 0
) -> tuple[Compiled, Spec]:
    """The kernel of ``kernels/NAME.spec`` compiled for data of ``shape``
    (:func:`compile_for`, emitted at the plan's parameter set), or with ``shape`` None
    synthesized at ``n = own`` and emitted as it is (for instances, with their batching).
    Reused from ``folder`` when ``reuse`` and an earlier run left it there (the same spec
    text and shape)."""
    source = KERNELS / f"{name}.spec"
    spec = load_spec(source, {"n": own} if shape is None else None)
    # The emitted text depends on the spec, the data and the runtime it is built from.
    runtime = RuntimeText.load()
    built = "".join([runtime.head, runtime.middle, *(s.code for s in application_sections())])
    key = hashlib.sha256(f"{source.read_text()}\n{shape}\n{own}\n{built}".encode()).hexdigest()[:12]
    size = "x".join(map(str, shape)) if shape else f"n{own}"
    module = folder / f"{name}_{size}_{key}.py"
    meta = module.with_suffix(".json")
    if reuse and module.is_file() and meta.is_file():
        known = json.loads(meta.read_text())
        return Compiled.from_json({**known, "module": str(module), "reused": True}), spec
    start = time.perf_counter()
    if shape is None:
        result = synthesize(spec)
        text, tile, param_set, plan = emit_python(result.program, spec), spec, "", ""
    else:
        kernel = compile_for(spec, shape)
        text = emit_python(
            kernel.result.program, kernel.spec, EmitOptions(param_set=kernel.param_set)
        )
        tile, param_set, plan = kernel.spec, kernel.param_set.name, kernel.plan.describe()
    compiled = Compiled(
        kernel=name,
        data_shape=shape or (spec.n,),
        tile_params=" ".join(f"{k}={v}" for k, v in tile.params),
        param_set=param_set,
        compile_s=round(time.perf_counter() - start, 2),
        plan=plan,
        module=str(module),
        reused=False,
    )
    module.write_text(text)
    meta.write_text(json.dumps(compiled.to_json()))
    return compiled, spec


def interleave(rep: int, sides: Sequence[Callable[[], Sample]]) -> list[Sample]:
    """Run ``sides`` in order in an even repetition ``rep``, reversed in an odd one; the
    samples come back in the order of ``sides``."""
    order = range(len(sides)) if rep % 2 == 0 else range(len(sides) - 1, -1, -1)
    done = {i: sides[i]() for i in order}
    return [done[i] for i in range(len(sides))]


def run_benchmark(config: Config, folder: Path) -> AppsResults:
    """Compile every kernel into ``folder`` (or reuse ``config.kernels_dir``), then run the
    photo, the reductions and the instances ``config.reps`` times, interleaved."""
    info = machine_info()
    load_start = load_average()
    _say(f"load average at start {load_start}")
    reuse = config.kernels_dir is not None
    image = camera().astype(np.int64)
    if config.crop:
        image = image[: config.crop[0], : config.crop[1]]
    photo_shape = (int(image.shape[0]), int(image.shape[1]))
    compiled: list[Compiled] = []
    specs: dict[str, Spec] = {}
    jobs: list[tuple[str, tuple[int, ...]]] = [(k, photo_shape) for k in config.photo_kernels]
    jobs += [(k, (config.reduction_n,)) for k in REDUCTIONS]
    for name, shape in jobs:
        _say(f"compiling {name} for {shape}")
        c, specs[name] = compile_kernel(name, shape, folder, reuse)
        compiled.append(c)
        _say(f"  tile {c.tile_params} at {c.param_set} ({c.compile_s} s)")
    _say(f"compiling dot_product at n = {config.instance_n}")
    dot, _ = compile_kernel("dot_product", None, folder, reuse, own=config.instance_n)
    compiled.append(dot)
    modules = {c.kernel: Path(c.module) for c in compiled[:-1]}

    photo: dict[str, list[tuple[Sample, Sample]]] = {k: [] for k in config.photo_kernels}
    reductions: dict[str, list[Sample]] = {k: [] for k in REDUCTIONS}
    instances: list[tuple[Sample, Sample]] = []
    red_data = {k: reduction_inputs(k, config.reduction_n, config.seed) for k in REDUCTIONS}
    inst_cts, inst_pts = instance_inputs(config.instances, config.instance_n, config.seed)
    for rep in range(config.reps):
        for name in config.photo_kernels:
            _say(f"rep {rep + 1}/{config.reps}: {name} on the photo {photo_shape}")
            ours, theirs = interleave(
                rep,
                [
                    lambda n=name: ours_photo(specs[n], modules[n], image),  # type: ignore[misc]
                    lambda n=name: theirs_photo(n, image),  # type: ignore[misc]
                ],
            )
            photo[name].append((ours, theirs))
            _say(f"  ours {ours.total_s:.2f} s, theirs {theirs.total_s:.2f} s")
        for name in REDUCTIONS:
            _say(f"rep {rep + 1}/{config.reps}: {name} over n = {config.reduction_n}")
            cts, pts = red_data[name]
            reductions[name].append(ours_reduction(name, modules[name], cts, pts))
        _say(f"rep {rep + 1}/{config.reps}: {config.instances} instances, batched and not")
        batched, single = interleave(
            rep,
            [
                lambda: ours_instances(Path(dot.module), inst_cts, inst_pts),
                lambda: per_instance(Path(dot.module), inst_cts, inst_pts),
            ],
        )
        instances.append((batched, single))
        _say(f"  batched {batched.total_s:.2f} s, per instance {single.total_s:.2f} s")
    load_end = load_average()
    _say(f"load average at end {load_end}")
    return AppsResults(
        machine=info,
        load_start=load_start,
        load_end=load_end,
        reps=config.reps,
        photo_shape=photo_shape,
        reduction_n=config.reduction_n,
        reduction_inputs=tuple((k, len(red_data[k][0])) for k in REDUCTIONS),
        instance_count=config.instances,
        instance_n=config.instance_n,
        compiled=tuple(compiled),
        photo=tuple((k, tuple(v)) for k, v in photo.items()),
        reductions=tuple((k, tuple(v)) for k, v in reductions.items()),
        instances=tuple(instances),
    )


def _shape(text: str) -> tuple[int, int]:
    h, sep, w = text.lower().partition("x")
    if not sep or not h.isdigit() or not w.isdigit() or int(h) < 1 or int(w) < 1:
        raise argparse.ArgumentTypeError(f"write HxW, e.g. 72x80, not {text!r}")
    return int(h), int(w)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and write the report; exit status 1 when any result is wrong."""
    parser = argparse.ArgumentParser(prog="python -m eval.apps", description=__doc__)
    parser.add_argument("--reps", type=int, default=3, help="repetitions (default 3)")
    parser.add_argument("--out", type=Path, default=ROOT / "eval", help="report folder")
    parser.add_argument("--kernels", type=Path, help="keep and reuse emitted modules here")
    parser.add_argument("--crop", type=_shape, help="the photo's top-left HxW only")
    parser.add_argument("--photo-kernel", action="append", choices=PHOTO_KERNELS)
    parser.add_argument("--reduction-n", type=int, default=1_000_000)
    parser.add_argument("--instances", type=int, default=10_000)
    args = parser.parse_args(argv)
    if args.reps < 1 or args.reduction_n < 1 or args.instances < 1:
        parser.error("--reps, --reduction-n and --instances must be at least 1")
    config = Config(
        reps=args.reps,
        crop=args.crop,
        photo_kernels=tuple(args.photo_kernel or PHOTO_KERNELS),
        reduction_n=args.reduction_n,
        instances=args.instances,
        kernels_dir=args.kernels,
    )
    if args.kernels:
        args.kernels.mkdir(parents=True, exist_ok=True)
        results = run_benchmark(config, args.kernels)
    else:
        with tempfile.TemporaryDirectory(prefix="apps-kernels-") as tmp:
            results = run_benchmark(config, Path(tmp))
    md, js = write_report(results, args.out)
    print(md.read_text())
    _say(f"wrote {md} and {js}")
    return 0 if results.all_correct else 1


if __name__ == "__main__":
    sys.exit(main())
