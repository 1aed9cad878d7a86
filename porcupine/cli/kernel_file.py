"""``run --kernel FILE``: is FILE a kernel module Porcupine emitted for this spec?

Checked by reading the file, without running it: it must parse as Python and state, as
literals at its top level, the constants every emitted module carries (``SLOTS``,
``PLAINTEXT_MODULUS``, ``INPUTS``, ``OUTPUT_SLOTS``) and define ``kernel``; they must
match the spec. Anything else is refused before the module is imported.
"""

from __future__ import annotations

import ast
from typing import Any

from porcupine.cli.errors import UsageError, shown
from porcupine.cli.inputs import MAX_MODULE_BYTES, input_file
from quill.slots import T
from quill.spec import Spec

REQUIRED = ("SLOTS", "PLAINTEXT_MODULUS", "INPUTS", "OUTPUT_SLOTS")


def _literals(tree: ast.Module) -> dict[str, Any]:
    """Top-level ``NAME = literal`` (annotated or not) assignments."""
    found: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if isinstance(target, ast.Name):
            try:
                found[target.id] = ast.literal_eval(value)
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                continue
    return found


def check_kernel_module(path: str, spec: Spec) -> None:
    """Raise :class:`UsageError` unless ``path`` is an emitted kernel module for ``spec``."""
    source = input_file(path, "kernel module", MAX_MODULE_BYTES).read_bytes()
    not_ours = f"{path} is not a kernel module emitted by Porcupine"
    try:
        tree = ast.parse(source, filename=path)
    except SyntaxError as e:
        raise UsageError(f"{not_ours}: it is not Python (line {e.lineno}: {e.msg})") from None
    except (ValueError, MemoryError, RecursionError) as e:
        raise UsageError(f"{not_ours}: it is not Python ({type(e).__name__})") from None
    found = _literals(tree)
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    missing = [name for name in REQUIRED if name not in found]
    missing += [] if "kernel" in functions else ["def kernel"]
    if "PACKING" in found and "SPEC_SLOTS" not in found:
        missing.append("SPEC_SLOTS")
    if missing:
        raise UsageError(
            f"{not_ours} (it lacks {', '.join(missing)}); make one with "
            f"`porcupine synth SPEC --emit python -o {path}` or `porcupine emit`"
        )
    # A packed kernel's ciphertexts may have more slots than the spec (SLOTS); its SPEC_SLOTS
    # are the spec's, which its INPUTS and OUTPUT_SLOTS describe (porcupine.backend.packed_emit).
    want = {
        "SPEC_SLOTS" if "PACKING" in found else "SLOTS": spec.n,
        "PLAINTEXT_MODULUS": T,
        "INPUTS": {d.name: str(d.kind) for d in spec.inputs},
        "OUTPUT_SLOTS": tuple(spec.output_slots()),
    }
    for name, value in want.items():
        got = found[name]
        if got != value:
            raise UsageError(
                f"{path} was not emitted for spec {spec.name}: its {name} is {shown(got)}, "
                f"the spec's is {shown(value)}"
            )


def kernel_params(path: str) -> dict[str, int]:
    """The spec params a kernel module was emitted at (its ``SPEC_PARAMS``; empty for a
    module that does not say), read without running it."""
    source = input_file(path, "kernel module", MAX_MODULE_BYTES).read_bytes()
    try:
        found = _literals(ast.parse(source, filename=path))
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return {}  # check_kernel_module says what is wrong with it
    value = found.get("SPEC_PARAMS")
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, int) for k, v in value.items()
    ):
        return {}
    return value
