"""The measurements of the applications benchmark (``python -m eval.apps``): one run of one
side, as a :class:`Sample` with stage seconds, CPU seconds, bytes and a correctness verdict.

* :func:`ours_photo`: an emitted module compiled for the image's size
  (:func:`porcupine.app_plan.compile_for`) run by
  :func:`porcupine.backend.app_run.run_two_party` (client here, server in its own process),
  every output pixel that matters checked against :func:`quill.spec_array.reference_array`
  on the whole image;
* :func:`theirs_photo`: :func:`eval.handwritten_app.run`, the hand-written OpenFHE
  application (its own two processes; it checks every pixel itself);
* :func:`ours_reduction`, :func:`ours_instances`, :func:`per_instance`: the reductions and
  the batched and unbatched instances, checked against numpy mod t.

CPU seconds are ``resource.getrusage`` of this process plus its waited-for children (the
server processes) over the call: the load-independent figure on a shared machine.
"""

from __future__ import annotations

import math
import resource
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from eval import handwritten_app
from eval.apps_instances import run_per_instance
from porcupine.backend.app_run import AppRun, run_two_party
from quill.params import BY_NAME
from quill.slots import T
from quill.spec import Spec
from quill.spec_array import reference_array
from quill.spec_shapes import shape_params


@dataclass(frozen=True, kw_only=True)
class Sample:
    """One run of one side: what went where, how big, how long, and whether it was right."""

    side: str  # "ours", "theirs", "batched" or "per instance"
    ciphertexts: int  # per ciphertext input (tiles, chunks, rows or instances)
    ring_dim: int
    param_set: str  # ours: the set's name; theirs: OpenFHE's default for its depth
    log2_q: float
    bundle_bytes: int
    upload_bytes: int
    download_bytes: int
    keygen_s: float  # context, keys and the serialized bundle
    encrypt_s: float  # encode, encrypt and serialize every ciphertext
    server_s: float  # the server process, start to exit (wall)
    evaluate_s: float  # inside the server (definitions differ: see the report's notes)
    decrypt_s: float  # deserialize, decrypt, decode and stitch
    total_s: float  # end to end: keygen + encrypt + server + decrypt
    wall_s: float  # around the whole call (module import, temporary files, checks)
    cpu_s: float  # CPU seconds of this process and the server over the call
    checked: int  # output elements compared with the reference
    correct: bool


def cpu_seconds() -> float:
    """User and system seconds of this process and its waited-for children so far."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(call: Callable[[], Any]) -> tuple[Any, float, float]:
    """``call()``, its wall seconds and its CPU seconds (self and children)."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    result = call()
    return result, time.perf_counter() - wall, cpu_seconds() - cpu


def _sample(side: str, run: AppRun, wall: float, cpu: float, checked: int, correct: bool) -> Sample:
    return Sample(
        side=side,
        ciphertexts=run.ciphertexts,
        ring_dim=run.ring_dim,
        param_set=run.parameter_set,
        log2_q=round(BY_NAME[run.parameter_set].log2_q, 1),
        bundle_bytes=run.bundle_bytes,
        upload_bytes=run.upload_bytes,
        download_bytes=run.download_bytes,
        keygen_s=run.keygen_s,
        encrypt_s=run.encrypt_s,
        server_s=run.server_wall_s,
        evaluate_s=run.evaluate_s,
        decrypt_s=run.decrypt_s,
        total_s=run.total_s,
        wall_s=wall,
        cpu_s=cpu,
        checked=checked,
        correct=correct,
    )


def check_against_spec(
    spec: Spec, inputs: Mapping[str, npt.ArrayLike], output: Any
) -> tuple[int, int]:
    """(elements that matter, of those wrong): the decrypted ``output`` (a masked array,
    masked where don't-care) against the spec's reference on the whole ``inputs``."""
    shapes = {name: np.shape(values) for name, values in inputs.items()}
    reference = reference_array(spec.origin.source, shape_params(spec, shapes), inputs)
    got = np.asarray(np.ma.filled(output, 0), dtype=np.int64) % T  # type: ignore[no-untyped-call]
    masked = np.asarray(np.ma.getmaskarray(output))  # type: ignore[no-untyped-call]
    bad = reference.matters & (masked | (got != reference.values))
    return int(reference.matters.sum()), int(bad.sum())


def ours_photo(spec: Spec, module: Path, image: npt.NDArray[np.int64]) -> Sample:
    """The compiled kernel at ``module`` on ``image``, two processes, checked pixel-exact."""
    run, wall, cpu = timed(lambda: run_two_party(module, {"x": image}, workers=1))
    checked, wrong = check_against_spec(spec, {"x": image}, run.output)
    return _sample("ours", run, wall, cpu, checked, wrong == 0 and checked > 0)


def theirs_photo(name: str, image: npt.NDArray[np.int64]) -> Sample:
    """The hand-written OpenFHE application on ``image`` (it checks every pixel itself and
    raises WrongResult on a wrong one, recorded here as incorrect)."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    try:
        report = handwritten_app.run(name, image)
    except handwritten_app.WrongResult:
        nan = math.nan
        return Sample(
            side="theirs", ciphertexts=0, ring_dim=0, param_set="?", log2_q=nan,
            bundle_bytes=0, upload_bytes=0, download_bytes=0, keygen_s=nan, encrypt_s=nan,
            server_s=nan, evaluate_s=nan, decrypt_s=nan, total_s=nan,
            wall_s=time.perf_counter() - wall, cpu_s=cpu_seconds() - cpu, checked=0,
            correct=False,
        )  # fmt: skip
    return Sample(
        side="theirs",
        ciphertexts=report.tiles,
        ring_dim=report.ring_dim,
        param_set=f"OpenFHE default, depth {report.depth}",
        log2_q=report.log2_q,
        bundle_bytes=report.bundle_bytes,
        upload_bytes=report.upload_bytes,
        download_bytes=report.download_bytes,
        # its context creation and bundle serialization too: ours times them in keygen
        keygen_s=report.context_s + report.keygen_s + report.bundle_s,
        encrypt_s=report.encrypt_s,
        server_s=report.server_s,
        evaluate_s=report.evaluate_s,
        decrypt_s=report.decrypt_s,
        total_s=report.total_s,
        wall_s=time.perf_counter() - wall,
        cpu_s=cpu_seconds() - cpu,
        checked=report.pixels,
        correct=report.correct,
    )


def reduction_inputs(name: str, n: int, seed: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """(ciphertext inputs, plaintext inputs) of a reduction over ``n`` elements: the dot
    product's a (encrypted) and b (the server's), residues mod t; Hamming's two bit vectors."""
    rng = np.random.default_rng(seed)
    if name == "dot_product":
        return {"a": rng.integers(0, T, n)}, {"b": rng.integers(0, T, n)}
    return {"a": rng.integers(0, 2, n), "b": rng.integers(0, 2, n)}, {}


def reduction_expected(name: str, inputs: Mapping[str, npt.NDArray[np.int64]]) -> int:
    """The reduction in numpy, mod t (products reduced before the sum: no int64 overflow)."""
    a, b = (np.asarray(v, dtype=np.int64) for v in (inputs["a"], inputs["b"]))
    if name == "dot_product":
        return int((a * b % T).sum() % T)
    return int((a + b - 2 * a * b).sum() % T)


def ours_reduction(
    name: str, module: Path, cts: Mapping[str, Any], pts: Mapping[str, Any]
) -> Sample:
    """The reduction compiled for the data's size, two processes, against numpy mod t."""
    run, wall, cpu = timed(lambda: run_two_party(module, cts, pts, workers=1))
    want = reduction_expected(name, {**cts, **pts})
    return _sample("ours", run, wall, cpu, 1, int(run.output) % T == want)


def instance_inputs(count: int, n: int, seed: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """``count`` independent length-``n`` dot products: a (encrypted) and b (the server's)."""
    rng = np.random.default_rng(seed)
    return {"a": rng.integers(0, T, (count, n))}, {"b": rng.integers(0, T, (count, n))}


def _instances_expected(cts: Mapping[str, Any], pts: Mapping[str, Any]) -> npt.NDArray[np.int64]:
    a, b = np.asarray(cts["a"], dtype=np.int64), np.asarray(pts["b"], dtype=np.int64)
    expected: npt.NDArray[np.int64] = (a * b % T).sum(axis=1) % T
    return expected


def _instances_verdict(output: Any, want: npt.NDArray[np.int64]) -> bool:
    got = np.ma.filled(output, -1)  # type: ignore[no-untyped-call]
    got = np.asarray(got, dtype=np.int64).reshape(len(want))
    return bool(np.array_equal(got % T, want) and not np.ma.getmaskarray(output).any())  # type: ignore[no-untyped-call]


def ours_instances(module: Path, cts: Mapping[str, Any], pts: Mapping[str, Any]) -> Sample:
    """The instances batched into few ciphertexts (``run_two_party(instances=True)``)."""
    run, wall, cpu = timed(lambda: run_two_party(module, cts, pts, instances=True, workers=1))
    want = _instances_expected(cts, pts)
    return _sample("batched", run, wall, cpu, len(want), _instances_verdict(run.output, want))


def per_instance(module: Path, cts: Mapping[str, Any], pts: Mapping[str, Any]) -> Sample:
    """One request of one ciphertext per instance, one server process
    (:func:`eval.apps_instances.run_per_instance`)."""
    run, wall, cpu = timed(lambda: run_per_instance(module, cts, pts))
    want = _instances_expected(cts, pts)
    correct = bool(np.array_equal(run.output % T, want))
    return _sample("per instance", run, wall, cpu, len(want), correct)
