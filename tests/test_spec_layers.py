"""The spec package's structure: layers without an import cycle, small modules, a spec that
re-instantiates from its parsed file, stages ordered by a topological sort; and one
syntax-error layer whose rules hold for both grammars."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quill import spec_parser
from quill.errors import QuillError, QuillSemanticError, QuillSyntaxError
from quill.parser import RESERVED, parse_program
from quill.spec import Spec, load_spec, parse_spec

QUILL = Path(__file__).resolve().parent.parent / "quill"
KERNELS = QUILL.parent / "kernels"
LAYERS = ["spec_eval", "spec_model", "spec_index", "spec_unroll", "spec_resolve", "spec"]
MINE = [*LAYERS, "spec_ast", "spec_parser", "syntax_errors", "parser", "printer", "errors"]


def quill_imports(module: str) -> set[str]:
    """The ``quill`` modules ``module`` imports (at any depth of its code)."""
    tree = ast.parse((QUILL / f"{module}.py").read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("quill."):
            found.add(node.module.removeprefix("quill."))
        elif isinstance(node, ast.Import):
            found.update(a.name.removeprefix("quill.") for a in node.names)
    return {m for m in found if (QUILL / f"{m}.py").exists()}


def test_spec_layers_import_only_downwards() -> None:
    graph = {m: quill_imports(m) for m in MINE}
    graphlib.TopologicalSorter(graph).prepare()  # raises CycleError on a cycle
    for k, layer in enumerate(LAYERS):
        above = set(LAYERS[k + 1 :])
        assert not graph[layer] & above, f"{layer} imports {graph[layer] & above}"
    assert "spec_parser" not in graph["spec_model"] | graph["spec_resolve"]


@pytest.mark.parametrize("module", MINE)
def test_modules_are_small(module: str) -> None:
    assert len((QUILL / f"{module}.py").read_text().splitlines()) < 500


# --- Spec.at -----------------------------------------------------------------------------


def test_at_does_not_parse_again(monkeypatch: pytest.MonkeyPatch) -> None:
    s = load_spec(KERNELS / "box_blur.spec")

    def refuse(text: str, file: str) -> None:
        raise AssertionError("Spec.at parsed the text again")

    monkeypatch.setattr(spec_parser.GRAMMAR, "parse", refuse)
    big = s.at({"w": 8, "h": 8})
    assert (big.n, dict(big.params)) == (64, {"w": 8, "h": 8})
    assert big.at() == s and s.at() == s


def same(a: Spec, b: Spec) -> bool:
    return a == b and a.stages == b.stages and a.name == b.name


def test_at_derives_derived_specs_again() -> None:
    sobel = load_spec(KERNELS / "sobel.spec")
    step = sobel.stage_spec("gx").with_stages_as_inputs()
    big = load_spec(KERNELS / "sobel.spec", {"w": 8, "h": 8})
    assert same(step.at({"w": 8, "h": 8}), big.stage_spec("gx").with_stages_as_inputs())
    assert same(sobel.with_stages_as_inputs().at({"w": 8, "h": 8}), big.with_stages_as_inputs())
    harris = load_spec(KERNELS / "harris.spec")
    sxx = harris.stage_spec("sxx")
    assert same(sxx.at(), sxx) and [d.name for d in sxx.at().stages] == ["gx"]


# --- stage order -------------------------------------------------------------------------

HEAD = "spec t\nslots 4\ninput x: ct vector(4)\n"


def stage_names(text: str) -> list[str]:
    return [d.name for d in parse_spec(HEAD + text).stages]


def test_stages_keep_declaration_order_where_they_can() -> None:
    text = """stage c[k]: vector(4) = b[k] + 1
    stage a[k]: vector(4) = x[k] * 2
    stage b[k]: vector(4) = x[k] + 3
    output y[k]: vector(4) = c[k] + a[k]
    """
    assert stage_names(text) == ["a", "b", "c"]
    chain = """stage d[k]: vector(4) = c[k]
    stage c[k]: vector(4) = b[k]
    stage b[k]: vector(4) = x[k]
    output y[k]: vector(4) = d[k]
    """
    assert stage_names(chain) == ["b", "c", "d"]


@pytest.mark.parametrize(
    ("stages", "cycle", "line"),
    [
        ("stage a[k]: vector(4) = a[k]\n", "a -> a", 4),
        (
            "stage c[k]: vector(4) = a[k]\nstage a[k]: vector(4) = b[k]\n"
            "stage b[k]: vector(4) = c[k] + x[k]\n",
            "c -> a -> b -> c",
            4,
        ),
        (
            "stage q[k]: vector(4) = x[k]\nstage b[k]: vector(4) = a[k] * q[k]\n"
            "stage a[k]: vector(4) = b[k]\n",
            "b -> a -> b",
            5,
        ),
    ],
)
def test_stage_cycles_are_named_and_located(stages: str, cycle: str, line: int) -> None:
    text = HEAD + stages + "output y[k]: vector(4) = a[k]\n"
    with pytest.raises(QuillSemanticError) as info:
        parse_spec(text, "t.spec")
    e = info.value
    assert e.message == f"stages read each other in a cycle: {cycle}"
    assert e.location is not None and (e.location.line, e.location.column) == (line, 1)


# --- one syntax-error layer, both grammars -----------------------------------------------


def syntax_error(language: str, text: str) -> QuillSyntaxError:
    with pytest.raises(QuillSyntaxError) as info:
        if language == "spec":
            parse_spec(text, "f")
        else:
            parse_program(text, "f")
    return info.value


@pytest.mark.parametrize(
    ("language", "text", "where"),
    [
        ("spec", "spec k\nslots 4 +   # more to come\n\n# the end\n", (2, 10)),
        ("quill", "kernel k(x: ct) {\n    return x   # more to come\n\n# the end\n", (2, 13)),
        ("spec", "spec k\nslots (4", (2, 9)),
        ("quill", "kernel k(x: ct", (1, 15)),
    ],
)
def test_end_of_file_points_past_the_last_code(
    language: str, text: str, where: tuple[int, int]
) -> None:
    e = syntax_error(language, text)
    assert e.message.startswith("unexpected end of file; expected ")
    assert e.location is not None
    assert (e.location.line, e.location.column, e.location.width) == (*where, 1)


@pytest.mark.parametrize(
    ("language", "text", "message", "width"),
    [
        ("spec", "spec kernel\nslots 4\ninput zero: ct scalar", "'zero' is a reserved word", 4),
        ("quill", "kernel k(x: ct) {\n    pt = neg(x)\n", "'pt' is a reserved word", 2),
        ("spec", "spec k slots 4 input x: ct vector(4) inw..4", "unexpected name 'inw'", 3),
        ("quill", "kernel k(x: ctx) {\n}\n", "unexpected name 'ctx'", 3),
    ],
)
def test_keywords_are_reserved_whole_words(
    language: str, text: str, message: str, width: int
) -> None:
    e = syntax_error(language, text)
    assert message in e.message and e.location is not None and e.location.width == width


def test_reserved_words_are_the_grammar_keywords() -> None:
    assert {"kernel", "return", "const", "ct", "pt"} == RESERVED
    assert {"mod", "in", "sum", "where", "zero"} <= spec_parser.keywords()


QUILL_VOCAB = ["kernel", "k", "(", ")", "{", "}", "x", ":", "ct", "pt", ",", "=", "add", "rot",
               "1", "-2", "return", "const", "[", "]", "\n", "# c", "@", "1.5"]  # fmt: skip
SPEC_VOCAB = ["spec", "k", "slots", "4", "input", "x", ":", "ct", "vector", "(", ")", "output",
              "y", "[", "]", "=", "+", "*", "mod", "in", "..", "where", "<", "\n", "# c", "%",
              "sum", "bits"]  # fmt: skip


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["spec", "quill"]), st.data())
def test_syntax_errors_have_one_shape(language: str, data: st.DataObject) -> None:
    vocab = SPEC_VOCAB if language == "spec" else QUILL_VOCAB
    text = " ".join(data.draw(st.lists(st.sampled_from(vocab), max_size=40)))
    try:
        parse_spec(text, "f") if language == "spec" else parse_program(text, "f")
    except QuillSyntaxError as e:
        loc = e.location
        assert loc is not None and loc.file == "f"
        lines = text.split("\n")
        assert 1 <= loc.line <= len(lines) and loc.width >= 1
        assert 1 <= loc.column <= len(lines[loc.line - 1]) + 1
        assert e.message.startswith(("unexpected ", "'")), e.message
        if e.message.startswith("unexpected end of file"):
            code = lines[loc.line - 1].split("#", 1)[0].rstrip()
            assert loc.column == len(code) + 1
    except QuillError:
        pass
