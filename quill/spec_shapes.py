"""The params a spec takes at the size of given data: ``image(h, w)`` fed a 512 x 640 array
is the spec at ``h = 512, w = 640``. Applications run a kernel compiled at one size on data
of another; the spec at the data's size is the reference the result is checked against."""

from __future__ import annotations

from collections.abc import Mapping

from quill.spec_ast import InputAst, Name
from quill.spec_model import Spec


def shape_params(spec: Spec, shapes: Mapping[str, tuple[int, ...]]) -> dict[str, int]:
    """``spec``'s params with every size an input's layout names by a bare param set from
    that input's shape in ``shapes`` (inputs not given keep the spec's own sizes). Raises
    ValueError when two inputs disagree on a param, or when a layout dimension written as an
    expression (``vector(2 * n)``) does not match the shape it is given (it is not solved
    for)."""
    params = dict(spec.params)
    fixed: dict[str, tuple[str, int]] = {}
    decls = [d for d in spec.origin.source.decls if isinstance(d, InputAst)]
    for decl in decls:
        if decl.name not in shapes:
            continue
        shape = tuple(shapes[decl.name])
        if len(shape) != len(decl.layout.args):
            raise ValueError(
                f"input {decl.name!r} is a {decl.layout.kind} of {len(decl.layout.args)} "
                f"dimensions, given an array of shape {shape}"
            )
        current = spec.input(decl.name).layout.shape
        for arg, size, now in zip(decl.layout.args, shape, current, strict=True):
            if not isinstance(arg, Name) or arg.name not in params:
                if size != now:  # an expression: not solved for
                    raise ValueError(
                        f"input {decl.name!r} has shape {shape}, but its layout's sizes are "
                        f"not all bare params, so only {current} fits it"
                    )
                continue
            seen = fixed.setdefault(arg.name, (decl.name, size))
            if seen[1] != size:
                raise ValueError(
                    f"{arg.name} is {seen[1]} for input {seen[0]!r} but {size} for input "
                    f"{decl.name!r}: give inputs of matching sizes"
                )
            params[arg.name] = size
    return params
