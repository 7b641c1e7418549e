"""The query language and the text folding behind full-text search."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from convstore import InvalidInputError
from convstore.search.query import parse_query
from convstore.search.text import fold, index_text


@pytest.mark.parametrize(
    ("query", "text", "found"),
    [
        ("重构", "代码重构讨论", True),  # two Chinese characters inside a longer run
        ("重", "代码重构讨论", True),  # one character
        ("代码重构", "关于代码重构的讨论", True),
        ("重构代码", "代码重构", False),
        ("python代码", "用 Python代码 重构", True),  # mixed scripts
        ("cafe", "Café au lait", True),  # accents
        ("CAFÉ", "cafe", True),
        ("ｐｙｔｈｏｎ", "python", True),  # full-width forms
        ("deploy*", "Deployment done", True),
        ("deploy", "Deployment done", False),  # whole words unless *
        ('"code review"', "the code review went well", True),
        ('"code review"', "review the code", False),
        ("review code", "review the code", True),  # words in any order
        ("code -draft", "code draft", False),
        ("code -draft", "code final", True),
        ("hello", "hello, world!", True),  # punctuation is not part of a word
        ("ハロー", "ハローワールド", True),  # Japanese kana
        ("*factor*", "Refactoring done", True),  # inside a word
        ("*FACTOR*", "refactor", True),
        ("*factor*", "fact or fiction", False),  # within one word only
        ("*重构*", "代码重构讨论", True),  # stars around Chinese change nothing
        ("code -*draft*", "code redrafted", False),
    ],
)
def test_matching(query: str, text: str, found: bool) -> None:
    assert parse_query(query).matches([text]) is found


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ('"unclosed', "unclosed quote"),
        ("-", "no letters or digits"),
        ("*", "no letters or digits"),
        ("a*b", r"\* may only end a word"),
        ("*a*b*", r"or surround one"),
        ("*ab*", "too short"),
        ("*代码x*", r"\* needs a single word"),
        ("代码重构*", r"\* needs a single word"),
        ("-only", "at least one term that must match"),
        ("!!! ???", "no letters or digits"),
        ("", "must not be empty"),
        ("x" * 1001, "longer than 1000"),
        (" ".join(["w"] * 40), "the limit is 32"),
    ],
)
def test_malformed_queries_are_refused(query: str, problem: str) -> None:
    with pytest.raises(InvalidInputError, match=problem):
        parse_query(query)


def test_fts5_expression_quotes_every_term() -> None:
    expression = parse_query('重 deploy* "code review" -draft').fts5("t", "s")
    assert expression == '(s : "重" AND t : "deploy"* AND t : "code review") NOT t : "draft"'


def test_words_inside_stars_stand_for_the_words_found() -> None:
    vocabulary = {"fig": ["config", "figure"], "ghost": []}
    query = parse_query("*FIG* -*ghost* plain")
    assert query.fragments() == ["fig", "ghost"]
    expanded = query.expanded(vocabulary.__getitem__)
    assert expanded is not None
    assert expanded.fts5("t", "s") == '(t : ("config" OR "figure") AND t : "plain")'
    assert expanded.matches(["plain config"]) and not expanded.matches(["plain configs"])
    assert parse_query("*ghost* plain").expanded(vocabulary.__getitem__) is None


@given(st.text(min_size=1, max_size=40))
def test_any_text_either_parses_to_a_quoted_expression_or_is_refused(text: str) -> None:
    try:
        query = parse_query(text)
    except InvalidInputError:
        return
    expression = query.fts5("t", "s")
    # every user token sits inside double quotes; nothing else of the input leaks out
    outside = "".join(expression.split('"')[0::2])
    assert set(outside) <= set("ts:()*ANDNOT ")


@given(st.text(max_size=60))
def test_a_text_always_matches_its_own_words(text: str) -> None:
    words = index_text([text]).terms.split()
    if words:
        assert parse_query(f'"{words[0]}"').matches([text])
    assert fold(fold(text)) == fold(text)


@given(st.text(max_size=60))
def test_index_terms_need_no_escaping_in_a_json_string(text: str) -> None:
    """Migration 0007 reads stored terms as a JSON array by quoting them."""
    terms = index_text([text]).terms
    assert json.loads('["' + terms.replace(" ", '","') + '"]') == (terms.split() or [""])
