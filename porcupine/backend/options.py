"""The choices that decide how a verified program becomes an emitted module: one record,
passed to every function that emits, plans or runs a kernel
(:func:`~porcupine.backend.openfhe_emit.emit_python`, ``emit_to_path``,
:func:`~porcupine.backend.kernel_module.emitted_module`,
:func:`~porcupine.backend.planning.plan`, ``run_encrypted`` and ``run_cleartext`` of
:mod:`porcupine.backend.openfhe_run`), instead of each repeating the same keyword
arguments. Its defaults are what a user gets from ``emit_python(program, spec)``: the
shipped cost table decides, the noise model picks the parameter set, 128-bit classic
security, no client packing. The same record emits the same module, byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass

from porcupine.layouts.packing import Packing
from quill.cost import DEFAULT_TABLE, CostTable
from quill.params import ParameterSet

DEFAULT_SECURITY = "HEStd_128_classic"
"""The ``openfhe.SecurityLevel`` a kernel accepts a context at unless told otherwise."""


@dataclass(frozen=True, kw_only=True)
class EmitOptions:
    """How to emit (and, for the runners, build the context of) one kernel."""

    table: CostTable = DEFAULT_TABLE
    """The cost table: prices the program on each parameter set, so it picks the set the
    noise model allows cheapest and decides hoisting (:func:`quill.cost.should_hoist`)."""

    hoist: bool | None = None
    """``None``: the cost table decides per ciphertext; ``True`` hoists every ciphertext
    rotated by two or more distinct amounts; ``False`` none."""

    param_set: ParameterSet | None = None
    """Forces this parameter set instead of the noise model's choice, whatever the model
    says of it (for probing the model, and for running several kernels in one context);
    its rows must hold the slots. ``None``: :func:`quill.noise.parameters` picks."""

    security: str | None = None
    """The least ``openfhe.SecurityLevel`` (by name) the kernel accepts a context at.
    ``None``: :data:`DEFAULT_SECURITY` when emitting; a run of a module file
    (``module_path=``) then builds the context at the module's own level."""

    packing: Packing | None = None
    """A client packing of the spec that the program computes (``packing.spec``, e.g.
    ``SynthesisResult.packing``); the module still takes the spec's inputs and returns its
    output, gathering and scattering slots itself. ``None``: the program computes the spec
    as it is. The planner does not read it (it is given the packed slot count)."""

    @property
    def security_level(self) -> str:
        """The security level to emit at: :attr:`security`, or :data:`DEFAULT_SECURITY`."""
        return self.security or DEFAULT_SECURITY


DEFAULT_OPTIONS = EmitOptions()
"""Every choice left to the compiler (the default of every function taking options)."""
