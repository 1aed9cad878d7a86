"""Two parties, two processes: the README's example, runnable.

The client (this process) owns the secret key: it makes the keys for an emitted kernel,
writes the public bundle and an encrypted request for an image of any size, and later
decrypts the response. The server is another process that gets only those files: here
``python KERNEL.py serve BUNDLE REQUEST RESPONSE``, the server every emitted module is.

    porcupine synth kernels/box_blur.spec --for 120x100 --emit python -o build/blur.py
    python examples/two_party.py build/blur.py [--height 120 --width 100]
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType

import numpy as np


def load(path: Path) -> ModuleType:
    """Import the emitted kernel module at ``path``."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # as `import` does (the module defines dataclasses)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("kernel", type=Path, help="an emitted box blur module")
    parser.add_argument("--height", type=int, default=120)
    parser.add_argument("--width", type=int, default=100)
    args = parser.parse_args(argv)
    kernel = load(args.kernel)
    image = np.random.default_rng(0).integers(0, 256, size=(args.height, args.width))

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        bundle, request, response = (folder / f for f in ("bundle", "request", "response"))
        # --- client: keys, the public bundle, the encrypted image (tiled as the kernel needs)
        client = kernel.Client()
        bundle.write_bytes(client.public_bundle())
        with request.open("wb") as out:
            client.encrypt_into(out, x=image)
        # --- server: another process, with the bundle and the request only
        subprocess.run(
            [sys.executable, str(args.kernel), "serve", str(bundle), str(request), str(response)],
            check=True,
        )
        # --- client: decrypt the whole blurred image
        with response.open("rb") as stream:
            blurred = client.decrypt_stream(stream)

    want = image[:-1, :-1] + image[1:, :-1] + image[:-1, 1:] + image[1:, 1:]
    got = blurred.filled(0)[:-1, :-1]
    ok = bool(np.array_equal(got, want) and blurred.mask[-1].all() and not blurred.mask[0, 0])
    print(f"{kernel.KERNEL}: {args.height}x{args.width} image, {'exact' if ok else 'WRONG'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
