"""The parsers' LALR tables are cached on disk (a tenth of a second of every command's
start-up): a parser loaded from the cache must read and reject text exactly as one built."""

from __future__ import annotations

from pathlib import Path

import pytest
from lark.lexer import TerminalDef

import quill.syntax_errors as syntax_errors
from quill import parser as quill_parser
from quill.errors import QuillSyntaxError
from quill.spec_parser import GRAMMAR as SPEC_GRAMMAR
from quill.syntax_errors import CACHE_ENV, Grammar

BAD_SPECS = [
    "spec s\nparam in = 4\n",  # a keyword where a name belongs
    "spec s\nslots 4\ninput inp: ct vector(4)\noutput y[k]: vector(4) = inp[k] +\n",
    "spec s\nslots 4\ninput x: ct vector(4\n",
]
BAD_KERNELS = [
    "kernel k(x: ct) {\n    v1 = add(x, )\n    return v1\n}\n",
    "kernel return(x: ct) {}\n",
]


EDITS: list[str] = []
_EDIT = syntax_errors._whole_word


def _counted(t: TerminalDef) -> None:
    """The grammar's terminal edit, counted (module level: Lark pickles it in the cache)."""
    EDITS.append(t.name)
    _EDIT(t)


def _fresh(g: Grammar) -> Grammar:
    return Grammar(
        g.path, nouns=g.nouns, groups=g.groups, hints=g.hints, newline=g.newline, comment=g.comment
    )


def _errors(g: Grammar, texts: list[str]) -> list[str]:
    found = []
    for text in texts:
        with pytest.raises(QuillSyntaxError) as e:
            g.parse(text, "t")
        found.append(str(e.value))
    return found


@pytest.mark.parametrize(
    ("grammar", "bad"),
    [(SPEC_GRAMMAR, BAD_SPECS), (quill_parser._GRAMMAR, BAD_KERNELS)],
    ids=["spec", "quill"],
)
def test_a_parser_from_the_cache_is_the_parser_built(
    grammar: Grammar, bad: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(syntax_errors, "_whole_word", _counted)
    EDITS.clear()
    built = _fresh(grammar)
    assert built.parser is not None and EDITS  # built: its keywords edited
    assert any((tmp_path / "porcupine").iterdir())  # and written
    EDITS.clear()
    loaded = _fresh(grammar)
    assert loaded.parser is not None and EDITS == []  # loaded: never edited in this process
    assert loaded.keywords == built.keywords and built.keywords
    assert loaded._literals == built._literals
    assert _errors(loaded, bad) == _errors(built, bad)


def test_no_cache_where_the_folder_cannot_be_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "file").write_text("")
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "file"))  # a file, not a folder
    g = _fresh(SPEC_GRAMMAR)
    assert g.parser is not None and "in" in g.keywords
