"""What the commands tell the user about a kernel: its summary, its noise, its value ranges."""

from __future__ import annotations

from typing import Any

from porcupine.cli.errors import Failure, say
from porcupine.outcomes import Pass, Stop
from porcupine.synthesize import PassApplied, SynthesisResult
from quill.ir import Program
from quill.noise import NoiseBudgetExceeded, Parameters, parameters
from quill.printer import format_program
from quill.ranges import EXACT, ValueRange, declares_ranges, program_ranges, spec_ranges
from quill.slots import T
from quill.spec import Spec

SHOWN_RANGES = 5
"""Values named in a range warning; the rest are counted."""

_STOPPED = {
    Stop.INTERRUPTED: "# INTERRUPTED: the best verified kernel so far; not proven optimal",
    Stop.TIMEOUT: "# stopped by the timeout: the best verified kernel so far; not proven optimal",
}

_REWRITES = {
    Pass.FEWER_PRODUCTS: "refactored into fewer products",
    Pass.ROTATIONS: "rotations rearranged",
}


def scope_text(result: SynthesisResult) -> str:
    """What the optimality claim covers, or why there is none, in words: the proof the
    kernel started from, then the passes that rewrote it."""
    text = result.optimal_scope
    rewrites = list(dict.fromkeys(_REWRITES[p.name] for p in result.passes if p.name in _REWRITES))
    if rewrites:
        text += f"; then {' and '.join(rewrites)}"
        # A rewrite is never dearer than the kernel it came from: the proof still holds.
        text += " (outside the sketch; no kernel in it is cheaper)" if result.optimal else ""
    for p in result.passes:
        if p.name is Pass.SLOT_PACKING:
            text += f"; then {_packed(p, result)}"
    return text


def _packed(p: PassApplied, result: SynthesisResult) -> str:
    where = result.packing.name if result.packing is not None else "a padded packing"
    return (
        f"its {p.before.ct_ct_mults} products packed into {p.after.ct_ct_mults} in the spare "
        f"slots of {where} (not searched: no optimality claim)"
    )


def as_json(result: SynthesisResult) -> dict[str, Any]:
    """The summary ``porcupine synth --json`` prints: the result's facts, the optimality
    scope in words (:func:`scope_text`)."""
    return {**result.to_json(), "optimal_scope": scope_text(result)}


def summary(result: SynthesisResult) -> str:
    """A human-readable summary of a synthesis result."""
    j = as_json(result)
    lines = [_STOPPED[result.stopped]] if result.stopped is not None else []
    lines += [
        format_program(result.program).rstrip(),
        "",
        f"# kernel {j['kernel']}: {j['instructions']} instructions "
        f"({j['rotations']} rotations, {j['additions']} add/sub, {j['ct_pt_mults']} ct*pt, "
        f"{j['ct_ct_mults']} ct*ct, {j['relinearizations']} relinearizations), "
        f"ct*ct depth {j['mult_depth']}",
        f"# rotation keys {j['rotation_keys']}; BFV depth {j['bfv_mult_depth']}, "
        f"N = {j['ring_dim']}; estimated cost {j['cost']:.3f} ms",
        f"# verified: {str(j['verified']).lower()}; optimal: {str(j['optimal']).lower()} "
        f"({j['optimal_scope']}); {j['seconds']:.2f} s, source: {j['source']}",
    ]
    return "\n".join(lines)


def noise_checked(program: Program, spec: Spec, what: str = "the kernel") -> Parameters:
    """The BFV parameters ``program`` needs, or a :class:`Failure` (with the kernel) when
    it needs more noise budget than any parameter set the noise model covers."""
    try:
        return parameters(program, spec.n)
    except NoiseBudgetExceeded as e:
        raise noise_failure(e, program, what) from None


def noise_failure(
    error: NoiseBudgetExceeded, program: Program | None, what: str = "the kernel"
) -> Failure:
    """The failure reported for a verified kernel (``what``) over the noise budget."""
    return Failure(
        f"{what} is correct but exceeds the noise budget: {error}; OpenFHE would "
        "decrypt its result wrongly",
        program,
    )


def check_spec_ranges(spec: Spec, *, strict: bool) -> bool:
    """Warn on stderr when the spec's output may wrap mod t for inputs in their declared
    ranges; ``strict``: refuse instead (a :class:`Failure`), also when no input declares a
    range, since then nothing bounds its values. True when the output stays exact."""
    if not declares_ranges(spec):
        if strict:
            raise Failure(
                f"--strict-ranges: no input of spec {spec.name} declares a range (`in lo..hi` "
                "or `bits`), so no value can be shown not to wrap mod t"
            )
        return True  # the spec computes in Z_t by declaration: nothing to warn about
    output = spec_ranges(spec)
    if not output.exact:
        _warn_or_refuse(
            [output], "decrypted results can then differ from the integer results", strict
        )
    return output.exact


def check_kernel_ranges(spec: Spec, program: Program, *, strict: bool, output_exact: bool) -> None:
    """Warn on stderr about values of ``program`` (verified equal to ``spec``) that may
    wrap mod t for inputs in range; ``strict``: refuse (a :class:`Failure`, with the
    kernel). ``output_exact``: what :func:`check_spec_ranges` said of the spec's output."""
    if not declares_ranges(spec):
        return
    wrapping = [v for v in program_ranges(program, spec) if not v.exact]
    if wrapping:
        consequence = (
            "harmless here: the kernel equals the spec mod t, whose output stays in range"
            if output_exact
            else "the spec's output may wrap too (above)"
        )
        _warn_or_refuse(wrapping, consequence, strict, program)


def _warn_or_refuse(
    wrapping: list[ValueRange], consequence: str, strict: bool, program: Program | None = None
) -> None:
    lines = [f"values may wrap mod {T} (exact only within {EXACT}) for inputs in range:"]
    lines += [f"  {v.what} can reach {v.interval}" for v in wrapping[:SHOWN_RANGES]]
    if len(wrapping) > SHOWN_RANGES:
        lines.append(f"  and {len(wrapping) - SHOWN_RANGES} more")
    lines.append(f"  {consequence}")
    text = "\n".join(lines)
    if strict:
        raise Failure(f"--strict-ranges: {text}", program)
    say(f"warning: {text}")
