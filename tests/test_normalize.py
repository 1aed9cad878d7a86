"""Algebraic normalization (porcupine.normalize): an elementwise spec's polynomial, factored,
as the direct kernel (porcupine.lowering.lower) when that is cheaper than the formula as
the spec writes it."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from porcupine.lowering import factored_kernel, lower
from quill.spec import parse_spec
from quill.stats import counts
from quill.verify import verify

HEAD = "spec e\nparam n = 4\nslots n\ninput a: ct vector(n)\ninput b: ct vector(n)\n"


def _spec(formula: str, plaintext: bool = False) -> str:
    extra = "input p: pt vector(n)\n" if plaintext else ""
    return f"{HEAD}{extra}output y[k]: vector(n) = {formula}\n"


def test_a_cancelling_formula_becomes_its_polynomial() -> None:
    # (a + b)(c + d) - ac - bd = ad + bc: two products and one addition, not five
    text = (
        "spec cross\nparam n = 4\nslots n\n"
        + "".join(f"input {v}: ct vector(n)\n" for v in "abcd")
        + "output y[k]: vector(n) = (a[k] + b[k]) * (c[k] + d[k]) - a[k] * c[k] - b[k] * d[k]\n"
    )
    spec = parse_spec(text)
    program = lower(spec)
    assert program is not None and verify(program, spec).ok
    c = counts(program)
    assert (c.ct_ct_mults, c.instructions) == (2, 3)


def test_a_shared_factor_is_multiplied_once() -> None:
    # a b + a p: a (b + p), one ct*ct product
    spec = parse_spec(_spec("a[k] * b[k] + a[k] * p[k]", plaintext=True))
    program = lower(spec)
    assert program is not None and verify(program, spec).ok
    assert counts(program).ct_ct_mults == 1


def test_constants_fold_and_the_issue_cases_lower() -> None:
    for formula in (
        "-2 * a[k] + a[k]^2",
        "2 * a[k] * a[k] + 5",
        "0 * a[k] * a[k]",
        "a[k] - a[k] + 3",
    ):
        spec = parse_spec(_spec(formula))
        program = lower(spec)
        assert program is not None and verify(program, spec).ok, formula
        # no instruction computes on constants alone: at most one operand is a constant
        consts = {c.name for c in program.consts}
        assert all(not set(i.args) <= consts for i in program.body), formula


def test_a_spec_that_is_not_elementwise_is_not_normalized() -> None:
    spec = parse_spec(_spec("a[k] * b[(k + 1) mod n]"))
    assert factored_kernel(spec) is None


_LEAVES = st.sampled_from(["a[k]", "b[k]", "p[k]", "0", "1", "2", "-3", "5"])


def _formulas() -> st.SearchStrategy[str]:
    return st.recursive(
        _LEAVES,
        lambda inner: st.one_of(
            st.tuples(inner, st.sampled_from(["+", "-", "*"]), inner).map(
                lambda t: f"({t[0]} {t[1]} {t[2]})"
            ),
            st.tuples(inner, st.sampled_from([2, 3])).map(lambda t: f"({t[0]})^{t[1]}"),
        ),
        max_leaves=7,
    )


@settings(max_examples=60, deadline=None)
@given(_formulas())
def test_the_factored_kernel_computes_the_spec(formula: str) -> None:
    spec = parse_spec(_spec(f"a[k] * b[k] + {formula}", plaintext=True))
    normal = factored_kernel(spec)
    assert normal is not None and verify(normal, spec).ok, formula
    chosen = lower(spec)
    assert chosen is not None and verify(chosen, spec).ok, formula
