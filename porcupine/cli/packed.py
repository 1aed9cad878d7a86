"""Which client packing a Quill kernel file was synthesized under.

A kernel from ``porcupine synth --layout search`` (or for a spec with ``packing`` clauses)
takes the packing's ciphertexts (``A__0``, ``a__b``, ``h__1``), not the spec's inputs, and
a ``.quill`` file records only the program. ``emit``, ``check`` and ``run --program`` need
the packing back, to gather the inputs and read the output. It is found, not named:

* The candidates are :func:`porcupine.layouts.choices.options` of the spec: exactly the packings
  the compiler offers (a spec that pins a packing offers only that one), each already
  proven equal to the spec (:func:`porcupine.layouts.packing.check`). No option or side file to
  keep in step with the kernel, and nothing a user could name wrongly.
* Ciphertext names alone do not decide: aligned terms major and terms minor both make
  ``A__0`` and ``B__0`` with different gathers. So a candidate whose ciphertexts the
  kernel takes (names and kinds) must also have the kernel proven equal to its spec
  (:func:`quill.verify.verify`). Since that packing is proven equal to the original spec,
  the kernel under it computes the original output exactly: whichever candidate is first
  to pass, the emitted module is right.
* None passing is a kernel that does not fit the spec (exit 2, the status for a kernel of
  another spec): it may be right for a packing the compiler does not offer, so it cannot be
  called wrong.
* A kernel under a zero-padded packing (``--layout padded``) takes the spec's own inputs,
  in more slots. One that is not equal to the spec on random inputs but is, on random
  inputs and then by proof, to a padded packing's spec, is that packing's.
"""

from __future__ import annotations

from porcupine.cli.errors import UsageError
from porcupine.layouts.choices import options, padded
from porcupine.layouts.packing import Packing, check
from porcupine.layouts.spare_slots import FACTORS
from quill.errors import QuillError
from quill.ir import Program
from quill.spec import Spec
from quill.verify import agrees_on_random, check_signature, verify


def packing_for(spec: Spec, program: Program) -> Packing | None:
    """``None`` when ``program`` takes the spec's own inputs (a natural kernel); else the
    packing (see the module docstring) whose ciphertexts it takes and whose spec it is
    proven equal to. Raises :class:`UsageError` when there is none."""
    try:
        check_signature(program, spec)
        return None if agrees_on_random(program, spec) else _padding_of(spec, program)
    except QuillError:
        pass  # not the spec's inputs: perhaps a packing's ciphertexts
    try:
        offered = options(spec)
    except ValueError as e:  # the spec asks for a packing that cannot be made
        raise UsageError(str(e)) from None
    takes = sorted((p.name, p.kind) for p in program.params)
    candidates = [p for p in offered if sorted((c.name, c.kind) for c in p.ciphertexts) == takes]
    for packing in candidates:
        if verify(program, packing.spec).ok:
            return packing
    shown = ", ".join(f"{name}: {kind}" for name, kind in takes)
    why = (
        f"nor is it equal to the spec of the packing{'s' if len(candidates) > 1 else ''} "
        + ", ".join(p.name for p in candidates)
        + " that makes them"
        if candidates
        else "nor are they the ciphertexts of a packing the compiler offers for it ("
        + ", ".join(p.name for p in offered)
        + ")"
    )
    inputs = ", ".join(f"{d.name}: {d.kind}" for d in spec.inputs)
    raise UsageError(
        f"kernel {program.name} takes ({shown}): not the inputs of spec {spec.name} "
        f"({inputs}), {why}"
    )


def _padding_of(spec: Spec, program: Program) -> Packing | None:
    """The zero-padded packing ``program`` is proven equal to, or ``None`` (then it is a
    natural kernel that is wrong, and the caller's verification says where)."""
    for factor in FACTORS:
        packing = padded(spec, factor)
        sampled = packing is not None and agrees_on_random(program, packing.spec)
        if packing is not None and sampled and verify(program, packing.spec).ok:
            return packing if check(packing, spec) else None
    return None
