"""Emitted kernel modules as the runner sees them: the :class:`EmittedKernel` protocol, and
loading a module (for OpenFHE, or bound to the cleartext backend)."""

from __future__ import annotations

import importlib.util
import itertools
import linecache
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np
import numpy.typing as npt

from porcupine.backend import cleartext, runtime
from porcupine.backend.openfhe_emit import emit_python
from porcupine.backend.options import DEFAULT_OPTIONS, EmitOptions
from porcupine.backend.planning import SpecLike
from quill.ir import Program

_counter = itertools.count()


class EmittedKernel(Protocol):
    """What the runner uses of an emitted kernel module (:mod:`porcupine.backend.runtime`
    documents each member). OpenFHE objects are ``Any``: openfhe ships no type stubs."""

    PLAINTEXT_MODULUS: int
    SLOTS: int
    PARAMETER_SET: str
    RING_DIM: int
    MULT_DEPTH: int
    TOWERS: tuple[int, ...]
    NOISE_MARGIN_BITS: float
    SECURITY: str
    CT_CT_MULT: bool
    ADVANCED_SHE: bool
    ROTATION_INDICES: tuple[int, ...]
    INPUTS: dict[str, str]  # input name -> "ct" or "pt"
    INPUT_LAYOUTS: dict[str, npt.NDArray[np.int64]]
    OUTPUT_SLOTS: tuple[int, ...]
    # kernel(cc, /, **inputs) checks, evaluate(cc, /, **inputs) does not; the keywords are
    # the module's INPUTS, which no static type can name.
    kernel: Callable[..., Any]
    evaluate: Callable[..., Any]

    def context_parameters(self, security: Any = None, *, ring_dim: int = ...) -> Any: ...
    def new_context(self, security: Any = None, *, advanced_she: bool = ...) -> Any: ...
    def generate_keys(
        self, cc: Any, rotation_indices: tuple[int, ...] = ..., ct_ct_mult: bool = ...
    ) -> Any: ...
    def check_context(self, cc: Any, key_tag: str | None = None) -> None: ...
    def encode(self, cc: Any, name: str, values: object) -> Any: ...
    def encrypt(self, cc: Any, keys: Any, name: str, values: object) -> Any: ...
    def decode_slots(self, cc: Any, keys: Any, ciphertext: Any) -> npt.NDArray[np.int64]: ...


# mypy checks here that the runtime, with its placeholder kernel, is an EmittedKernel.
_RUNTIME: EmittedKernel = runtime

MEMBERS: tuple[str, ...] = tuple(
    sorted(
        set(EmittedKernel.__annotations__)
        | {name for name, value in vars(EmittedKernel).items() if callable(value)}
        - {name for name in vars(EmittedKernel) if name.startswith("_")}
    )
)
"""The names an emitted kernel module defines for the runner."""


def load_module(path: str | Path, *, cleartext_backend: bool = False) -> EmittedKernel:
    """Import the emitted kernel module at ``path`` (under a fresh module name), bound to the
    cleartext backend if asked (:func:`porcupine.backend.cleartext.bind`).

    Raises ImportError when the file does not import and ValueError when it is not an
    emitted kernel module.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no emitted kernel module {path}")
    spec = importlib.util.spec_from_file_location(_fresh_name(path.stem), path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # as an import does: dataclasses look the module up
    try:
        spec.loader.exec_module(module)
    except Exception as error:  # whatever the file does wrong, say which file it was
        del sys.modules[spec.name]
        raise ImportError(f"cannot import {path}: {type(error).__name__}: {error}") from error
    return _kernel(module, str(path), cleartext_backend)


def emitted_module(
    program: Program,
    spec: SpecLike,
    options: EmitOptions = DEFAULT_OPTIONS,
    *,
    cleartext_backend: bool = False,
) -> EmittedKernel:
    """Emit ``program`` as ``options`` say (see
    :func:`~porcupine.backend.openfhe_emit.emit_python`) and import the text as a module,
    bound to the cleartext backend if asked.

    No file is written; the text is registered with :mod:`linecache`, so tracebacks show
    the emitted lines.
    """
    text = emit_python(program, spec, options)
    name = _fresh_name(program.name)
    filename = f"<emitted kernel {name}>"
    linecache.cache[filename] = (len(text), None, text.splitlines(keepends=True), filename)
    module = types.ModuleType(name)
    module.__file__ = filename
    sys.modules[name] = module  # as an import does: dataclasses look the module up
    exec(compile(text, filename, "exec"), vars(module))
    return _kernel(module, filename, cleartext_backend)


def is_packed(module: EmittedKernel) -> bool:
    """Whether ``module`` is a packed kernel's (:mod:`porcupine.backend.packed_emit`): its
    ``encrypt`` takes every input at once and gives the kernel's arguments, and
    ``unpack_output`` puts the kernel's output slots back in the spec's layout."""
    return hasattr(module, "PACKING")


def spec_slots(module: EmittedKernel) -> int:
    """The slots of the spec the module was emitted for: a packed kernel's ciphertexts may
    have more (SLOTS)."""
    return int(getattr(module, "SPEC_SLOTS", module.SLOTS))


def _fresh_name(stem: str) -> str:
    return f"_porcupine_kernel_{stem}_{next(_counter)}"


def _kernel(module: types.ModuleType, where: str, cleartext_backend: bool) -> EmittedKernel:
    """``module`` as an :class:`EmittedKernel`, once it is known to be one."""
    missing = [member for member in MEMBERS if not hasattr(module, member)]
    if missing:
        raise ValueError(
            f"{where} is not a kernel module emitted by Porcupine: it does not define "
            f"{', '.join(missing)}"
        )
    if cleartext_backend:
        cleartext.bind(module)
    return cast(EmittedKernel, module)
