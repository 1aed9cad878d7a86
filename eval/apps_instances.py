"""One instance per ciphertext: the unbatched side of the instances benchmark (``eval/apps``).

The batched side packs many independent small instances into the slots of few ciphertexts
(``Client.encrypt_instances``). Against it, this runs the same emitted module the way an
application without batching would: every instance is its own request of one ciphertext
(``Client.encrypt`` at the kernel's own size), all of them through one server process that
loads the public bundle once and answers each request with ``Server.evaluate`` (the
instance's plaintext inputs beside it), and the client decrypts every response with
``Client.decrypt``. Client here, server in a second process (``python -m eval.apps_instances
serve ...``), both single-threaded, as :func:`porcupine.backend.app_run.run_two_party` runs
the batched side; requests and responses are length-prefixed records in one file each.

The server side imports only the standard library, numpy and the emitted module.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before openfhe is imported (the module's)

import importlib.util
import itertools
import json
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:  # the server side imports none of porcupine
    from porcupine.backend.app_run import AppRun

ROOT = Path(__file__).resolve().parent.parent
_LENGTH = struct.Struct(">Q")
_loaded = itertools.count()


def _write(out: BinaryIO, data: bytes) -> None:
    out.write(_LENGTH.pack(len(data)))
    out.write(data)


def _records(stream: BinaryIO) -> Iterator[bytes]:
    while head := stream.read(_LENGTH.size):
        (size,) = _LENGTH.unpack(head)
        data = stream.read(size)
        if len(data) != size:
            raise ValueError(f"a record of {size} bytes ends after {len(data)}")
        yield data


def _load(path: Path) -> Any:
    """The emitted module at ``path``, imported as a standalone file (registered under a
    fresh name first: its dataclasses look their module up in sys.modules)."""
    name = f"_apps_kernel_{next(_loaded)}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ValueError(f"{path}: not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def serve(
    module_path: Path, bundle: Path, requests: Path, responses: Path, plaintexts: Mapping[str, Path]
) -> dict[str, float]:
    """The server: load the bundle once, answer every request of ``requests`` (instance
    ``i`` gets row ``i`` of each plaintext input) into ``responses``. Returns its seconds."""
    start = time.perf_counter()
    module = _load(module_path)
    values = {name: np.load(path, allow_pickle=False) for name, path in plaintexts.items()}
    with bundle.open("rb") as f:
        server = module.Server(f)
    loaded = time.perf_counter()
    with requests.open("rb") as inp, responses.open("wb") as out:
        for i, request in enumerate(_records(inp)):
            _write(out, server.evaluate(request, **{n: v[i] for n, v in values.items()}))
    return {"load_s": loaded - start, "evaluate_s": time.perf_counter() - loaded}


def run_per_instance(
    module_path: str | Path,
    inputs: Mapping[str, npt.ArrayLike],
    plaintexts: Mapping[str, npt.ArrayLike] | None = None,
    *,
    workdir: str | Path | None = None,
) -> AppRun:
    """Run ``count`` instances (every input shaped ``(count, *the kernel's shape)``), one
    request of one ciphertext per instance, client here and one server process for all: an
    :class:`~porcupine.backend.app_run.AppRun` of mode ``"per instance"`` (``ciphertexts``
    per ciphertext input: one per instance; ``output`` per instance, the kernel's output).
    Raises RuntimeError when the server fails."""
    with tempfile.TemporaryDirectory(prefix="apps-instances-", dir=workdir) as tmp:
        return _run(Path(module_path), inputs, plaintexts or {}, Path(tmp))


def _run(
    path: Path,
    inputs: Mapping[str, npt.ArrayLike],
    plaintexts: Mapping[str, npt.ArrayLike],
    folder: Path,
) -> AppRun:
    module = _load(path)
    cts = {name: np.asarray(v) for name, v in inputs.items()}
    counts = {len(v) for v in cts.values()}
    if len(counts) != 1:
        raise ValueError("every input must hold the same number of instances")
    count = counts.pop()
    bundle, requests, responses = (folder / f for f in ("bundle", "requests", "responses"))
    start = time.perf_counter()
    client = module.Client()
    with bundle.open("wb") as out:
        client.public_bundle_into(out)
    keyed = time.perf_counter()
    with requests.open("wb") as out:
        for i in range(count):
            _write(out, client.encrypt(**{n: v[i] for n, v in cts.items()}))
    encrypted = time.perf_counter()
    arguments = []
    for name, values in plaintexts.items():
        np.save(folder / f"{name}.npy", np.asarray(values))
        arguments.append(f"{name}={folder / f'{name}.npy'}")
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "eval.apps_instances", "serve", str(path)]
    server = subprocess.run(
        [*command, str(bundle), str(requests), str(responses), *arguments],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    served = time.perf_counter()
    if server.returncode != 0:
        raise RuntimeError(f"the per-instance server failed:\n{server.stderr.strip()}")
    timing = json.loads(server.stdout.strip().splitlines()[-1])
    with responses.open("rb") as stream:
        output = np.array([int(client.decrypt(r)) for r in _records(stream)], dtype=np.int64)
    done = time.perf_counter()
    from porcupine.backend.app_run import AppRun

    return AppRun(
        kernel=module.KERNEL,
        parameter_set=module.PARAMETER_SET,
        ring_dim=module.RING_DIM,
        mode="per instance",
        ciphertexts=count,
        bundle_bytes=bundle.stat().st_size,
        upload_bytes=requests.stat().st_size,
        download_bytes=responses.stat().st_size,
        keygen_s=keyed - start,
        encrypt_s=encrypted - keyed,
        server_load_s=float(timing["load_s"]),
        evaluate_s=float(timing["evaluate_s"]),
        server_wall_s=served - encrypted,
        decrypt_s=done - served,
        output=output,
    )


def main(argv: list[str] | None = None) -> int:
    """``serve MODULE BUNDLE REQUESTS RESPONSES [NAME=FILE.npy ...]``: prints one JSON line
    of seconds."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 5 or args[0] != "serve":
        print(main.__doc__, file=sys.stderr)
        return 2
    module, bundle, requests, responses = (Path(a) for a in args[1:5])
    plaintexts = {}
    for item in args[5:]:
        name, _, file = item.partition("=")
        plaintexts[name] = Path(file)
    print(json.dumps(serve(module, bundle, requests, responses, plaintexts)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
