"""Property tests for Alertmanager matchers and the Go-regex translation."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workflows.policy.matchers import (
    Matcher,
    MatcherError,
    _go_unquote,
    compile_go_regex,
    go_quote,
    matchers_string,
    parse_matcher,
    parse_matchers,
    quote_meta,
)

TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20)
CLASSIC_NAMES = st.from_regex(r"\A[a-zA-Z_:][a-zA-Z0-9_:]{0,8}\Z")
ANY_NAMES = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12)
NAMES = st.one_of(CLASSIC_NAMES, ANY_NAMES)
REGEXES = st.sampled_from(
    [
        "",
        ".*",
        ".+",
        "a|b",
        "[0-9]+",
        "(?i)prod",
        "x{2,3}",
        "\\d\\s\\w",
        "[^,]*",
        "é|ü",
        "(a|)b?",
        "\\pL*",
        "[[:alpha:]]+",
        "a.b",
        "(?s)a.b",
    ]
)
LABELS = st.dictionaries(st.sampled_from(["a", "b", "é", "x y"]), TEXT, max_size=3)


def matcher_values(op: str) -> st.SearchStrategy[str]:
    return TEXT if op in ("=", "!=") else st.one_of(REGEXES, TEXT.map(quote_meta))


@st.composite
def matchers(draw: st.DrawFn) -> Matcher:
    op = draw(st.sampled_from(["=", "!=", "=~", "!~"]))
    return Matcher.create(draw(NAMES), op, draw(matcher_values(op)))


@settings(max_examples=400)
@given(matchers())
def test_str_round_trips_through_the_parser(m: Matcher) -> None:
    assert parse_matcher(str(m)) == m
    assert parse_matchers(str(m)) == [m]


@settings(max_examples=200)
@given(st.lists(matchers(), min_size=1, max_size=4))
def test_matcher_lists_round_trip(found: list[Matcher]) -> None:
    assert parse_matchers(matchers_string(found)) == found
    assert parse_matchers(",".join(str(m) for m in found)) == found


@given(NAMES, TEXT, LABELS)
def test_equal_and_not_equal_are_complements(name: str, value: str, labels: dict[str, str]) -> None:
    labels = {**labels, name: value} if value and len(labels) % 2 else labels
    eq, ne = Matcher.create(name, "=", value), Matcher.create(name, "!=", value)
    assert eq.matches(labels) != ne.matches(labels)


@given(NAMES, st.one_of(REGEXES, TEXT.map(quote_meta)), LABELS, TEXT)
def test_regex_and_not_regex_are_complements(name: str, pattern: str, labels: dict[str, str], value: str) -> None:
    labels = {**labels, name: value}
    assert Matcher.create(name, "=~", pattern).matches(labels) != Matcher.create(name, "!~", pattern).matches(labels)


@settings(max_examples=300)
@given(TEXT, TEXT)
def test_escaped_literal_regex_behaves_like_equality(literal: str, other: str) -> None:
    regex, equal = Matcher.create("a", "=~", quote_meta(literal)), Matcher.create("a", "=", literal)
    for candidate in (literal, other, literal + "\n", "\n" + literal, literal + literal, literal.upper()):
        assert regex.matches_value(candidate) == equal.matches_value(candidate), candidate


@given(TEXT)
def test_missing_label_is_the_empty_string(value: str) -> None:
    m = Matcher.create("absent", "=", value)
    assert m.matches({}) == (value == "")


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",))))
def test_go_quote_round_trips(text: str) -> None:
    assert _go_unquote(go_quote(text)) == text


@settings(max_examples=500)
@given(st.text(alphabet='ab=!~",{}\\ é\n:1x', max_size=14))
def test_parser_only_raises_matcher_error(text: str) -> None:
    try:
        parse_matchers(text, allow_empty=True)
    except MatcherError:
        pass


@settings(max_examples=500)
@given(st.text(alphabet=string.ascii_letters[:6] + "()[]{}*+?|^$.\\-:,0123456789pPdDswQEzAbBx<>=!#é\n", max_size=12))
def test_regex_translation_yields_a_pattern_or_a_matcher_error(pattern: str) -> None:
    try:
        compiled = compile_go_regex(pattern)
    except MatcherError:
        return
    compiled.search("abc")


@pytest.mark.parametrize(
    "text,expected",
    [
        ("a=", [("a", "=", "")]),
        ("a = b ", [("a", "=", "b")]),
        ("{a=b", [("a", "=", "b")]),
        ("a=b}", [("a", "=", "b")]),
        ("{a=b},", [("a", "=", "b}")]),
        ("a=b,", [("a", "=", "b")]),
        ('a="x\\",y"', [("a", "=", 'x",y')]),
        ("a=x\\,b=y", [("a", "=", "x\\"), ("b", "=", "y")]),
        ("a=\\", [("a", "=", "\\")]),
        ("a=x\\qy", [("a", "=", "x\\qy")]),
        ('a="x\\ny"', [("a", "=", "x\ny")]),
        ("a==b", [("a", "=", "=b")]),
        (":a=b", [(":a", "=", "b")]),
        ("a=b\u00a0", [("a", "=", "b")]),
        ("a=}", [("a", "=", "")]),
        # Not classic, so Alertmanager >= 0.27 reads them with its UTF-8 parser:
        ("a.b=c", [("a.b", "=", "c")]),
        ('"foo bar"!="x"', [("foo bar", "!=", "x")]),
        (" {a=b}", [("a", "=", "b")]),
        ('a="\\u00e9"', [("a", "=", "\\u00e9")]),  # classic: \u is not an escape, kept literally
    ],
)
def test_classic_parser_quirks_verified_against_amtool(text: str, expected: list[tuple[str, str, str]]) -> None:
    assert [(m.name, m.op, m.value) for m in parse_matchers(text)] == expected


@pytest.mark.parametrize("text", ["a=b,,c=d", ",", 'a="', 'a=x"', 'a="x"y"', 'a="x" b="y"', "{{a=b}", 'a=~"("'])
def test_parser_rejects_what_alertmanager_rejects(text: str) -> None:
    with pytest.raises(MatcherError):
        parse_matchers(text)


def test_empty_matcher_text_is_opt_in() -> None:
    assert parse_matchers("", allow_empty=True) == [] and parse_matchers("{}", allow_empty=True) == []
    with pytest.raises(MatcherError, match="empty matcher"):
        parse_matchers("{}")


def test_single_matcher_parse_does_not_split_commas() -> None:
    # amtool label arguments: `a=x,b=y` is one label whose value is "x,b=y".
    m = parse_matcher("a=x,b=y")
    assert (m.name, m.op, m.value) == ("a", "=", "x,b=y")


def test_utf8_names_print_quoted_like_alertmanager() -> None:
    assert str(Matcher.create("foo bar", "=", "x\ty")) == '"foo bar"="x\\ty"'
    assert str(Matcher.create("foo", "=~", 'a"b\n')) == 'foo=~"a\\"b\\n"'
