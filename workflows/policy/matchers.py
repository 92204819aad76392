"""Alertmanager label matchers: ``name="value"``, ``!=``, ``=~``, ``!~``.

Parsing follows Alertmanager's default ("fallback") mode: a string is parsed
with the classic parser (``pkg/labels``, the only one in Alertmanager ≤ 0.26
and in ``amtool`` 0.25); when the classic parser rejects it, the UTF-8 parser
(``matcher/parse``, Alertmanager ≥ 0.27) is tried. Alertmanager returns the
classic result whenever the classic parser accepts the input (also when both
accept it and disagree), so the rule above is exactly its behaviour.

Classic rules (verified against ``amtool``): one optional leading ``{`` and
one optional trailing ``}`` are trimmed (no whitespace trimming first); the
rest is split on commas outside double quotes; a trailing comma is allowed,
an empty item between commas is an error; each matcher is
``^\\s*name\\s*op\\s*value\\s*$`` with a classic label name
(``[a-zA-Z_:][a-zA-Z0-9_:]*``); the value may be bare or double-quoted, may be
empty, and in both forms ``\\"``, ``\\\\`` and ``\\n`` are unescaped while any
other backslash is literal; an unescaped ``"`` inside the value is an error.

UTF-8 rules: names and values are either double-quoted Go strings (any
UTF-8, Go escapes, see :mod:`workflows.policy.gostrings`) or bare runs of
characters other than whitespace and ``{}!=~,\\"'`\\``; whitespace between
tokens is ignored.

Regular expressions use Go's RE2 syntax and are anchored as Alertmanager
anchors them (``^(?:re)$``); :mod:`workflows.policy.re2` translates them.
``compile_go_regex``, ``quote_meta`` and ``go_quote`` are re-exported here.

Everything here is pure and deterministic (safe inside workflows).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from workflows.policy.errors import MatcherError
from workflows.policy.gostrings import go_quote, go_unquote, is_space, openmetrics_escape, trim_space
from workflows.policy.re2 import compile_go_regex, quote_meta

__all__ = [
    "Matcher",
    "MatcherError",
    "parse_matchers",
    "parse_matcher",
    "matches_all",
    "compile_go_regex",
    "quote_meta",
    "go_quote",
    "is_classic_label_name",
    "is_valid_label_name",
    "sort_matchers",
    "matchers_string",
]

Op = Literal["=", "!=", "=~", "!~"]
_OP_ORDER = {"=": 0, "!=": 1, "=~": 2, "!~": 3}

_go_unquote = go_unquote
"""The former private name, kept for callers (tests) that import it from here."""


def _is_reserved(ch: str) -> bool:
    """Characters the UTF-8 parser does not accept in a bare name or value."""
    return is_space(ch) or ch in "{}!=~,\\\"'`"


_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")


def is_classic_label_name(name: str) -> bool:
    """A classic Prometheus label name (``[a-zA-Z_][a-zA-Z0-9_]*``), as ``match:`` keys need."""
    return bool(_LABEL_NAME.match(name))


def is_valid_label_name(name: str) -> bool:
    """A label name Alertmanager ≥ 0.27 accepts (any non-empty UTF-8 text)."""
    return bool(name)


# ------------------------------------------------------------------ matcher


@dataclass(frozen=True)
class Matcher:
    """One label matcher."""

    name: str
    op: Op
    value: str
    _regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def create(cls, name: str, op: Op, value: str) -> Matcher:
        """Build a matcher; ``=~``/``!~`` compile the anchored Go regex ``^(?:value)$``."""
        if op not in _OP_ORDER:
            raise MatcherError(f"unknown operator {op!r}")
        regex = None
        if op in ("=~", "!~"):
            try:
                regex = compile_go_regex("^(?:" + value + ")$")
            except MatcherError as exc:
                message = str(exc).replace(f" in `^(?:{value})$`", "")
                raise MatcherError(f"{message} in {value!r}") from None
        return cls(name, op, value, regex)

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether the label set satisfies this matcher (missing label = "")."""
        return self.matches_value(labels.get(self.name, ""))

    def matches_value(self, actual: str) -> bool:
        """Whether one label value satisfies this matcher."""
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        assert self._regex is not None
        hit = self._regex.search(actual) is not None
        return hit if self.op == "=~" else not hit

    def __str__(self) -> str:
        # Alertmanager's Matcher.String(): names the classic parser cannot read are quoted.
        if any(_is_reserved(ch) for ch in self.name):
            return f"{go_quote(self.name)}{self.op}{go_quote(self.value)}"
        return f'{self.name}{self.op}"{openmetrics_escape(self.value)}"'


def sort_matchers(matchers: list[Matcher]) -> list[Matcher]:
    """Alertmanager's matcher order: by name, then value, then operator."""
    return sorted(matchers, key=lambda m: (m.name, m.value, _OP_ORDER[m.op]))


def matchers_string(matchers: list[Matcher]) -> str:
    """Alertmanager's ``Matchers.String()``: ``{a="1",b=~"x"}``."""
    return "{" + ",".join(str(m) for m in matchers) + "}"


def matches_all(matchers: list[Matcher], labels: Mapping[str, str]) -> bool:
    """True when every matcher matches (an empty list matches everything)."""
    return all(m.matches(labels) for m in matchers)


# ------------------------------------------------------------ classic parser

_CLASSIC_MATCHER = re.compile(
    r"\A[\t\n\f\r ]*([a-zA-Z_:][a-zA-Z0-9_:]*)[\t\n\f\r ]*(=~|=|!=|!~)[\t\n\f\r ]*(.*?)[\t\n\f\r ]*\Z",
    re.DOTALL,
)


def _classic_matcher(text: str) -> Matcher:
    found = _CLASSIC_MATCHER.match(text)
    if not found:
        raise MatcherError(f"bad matcher format: {text}")
    name, op, raw = found.group(1), found.group(2), found.group(3)
    original = raw
    expect_trailing_quote = False
    if raw.startswith('"'):
        raw = raw[1:]
        expect_trailing_quote = True
    out: list[str] = []
    escaped = False
    last = len(raw) - 1
    for i, ch in enumerate(raw):
        if escaped:
            escaped = False
            if ch == "n":
                out.append("\n")
            elif ch in '"\\':
                out.append(ch)
            else:
                out.append("\\" + ch)
            continue
        if ch == "\\":
            if i < last:
                escaped = True
                continue
            out.append("\\")
        elif ch == '"':
            if not expect_trailing_quote or i < last:
                raise MatcherError(f"matcher value contains unescaped double quote: {original}")
            expect_trailing_quote = False
        else:
            out.append(ch)
    if expect_trailing_quote:
        raise MatcherError(f"matcher value contains unescaped double quote: {original}")
    return Matcher.create(name, op, "".join(out))  # type: ignore[arg-type]


def _classic_matchers(text: str) -> list[Matcher]:
    body = text[1:] if text.startswith("{") else text
    body = body[:-1] if body.endswith("}") else body
    tokens: list[str] = []
    current: list[str] = []
    inside_quotes = escaped = False
    for ch in body:
        if ch == ",":
            if not inside_quotes:
                tokens.append("".join(current))
                current = []
                continue
        elif ch == '"':
            if not escaped:
                inside_quotes = not inside_quotes
            else:
                escaped = False
        elif ch == "\\":
            escaped = not escaped
        else:
            escaped = False
        current.append(ch)
    last = trim_space("".join(current))
    if last:
        tokens.append(last)
    return [_classic_matcher(token) for token in tokens]


# ------------------------------------------------------------- UTF-8 parser

_EOF, _OPEN, _CLOSE, _COMMA, _OPERATOR, _QUOTED, _UNQUOTED = range(7)


def _utf8_tokens(text: str) -> list[tuple[int, str]]:
    tokens: list[tuple[int, str]] = []
    pos, size = 0, len(text)
    while pos < size:
        ch = text[pos]
        if ch == "{":
            tokens.append((_OPEN, ch))
            pos += 1
        elif ch == "}":
            tokens.append((_CLOSE, ch))
            pos += 1
        elif ch == ",":
            tokens.append((_COMMA, ch))
            pos += 1
        elif ch in "=!":
            nxt = text[pos + 1] if pos + 1 < size else ""
            if ch == "!":
                if nxt not in ("=", "~"):
                    raise MatcherError(f"{pos}:{pos + 1}: {text[pos : pos + 2]}: expected one of '=~'")
                tokens.append((_OPERATOR, ch + nxt))
                pos += 2
            elif nxt == "~":
                tokens.append((_OPERATOR, "=~"))
                pos += 2
            else:
                tokens.append((_OPERATOR, "="))
                pos += 1
        elif ch == '"':
            end = pos + 1
            escaped = False
            while end < size:
                c = text[end]
                if escaped:
                    escaped = False
                elif c == "\\":
                    escaped = True
                elif c == '"':
                    break
                end += 1
            if end >= size:
                raise MatcherError(f'{pos}:{size}: {text[pos:]}: missing end "')
            tokens.append((_QUOTED, text[pos : end + 1]))
            pos = end + 1
        elif not _is_reserved(ch):
            end = pos
            while end < size and not _is_reserved(text[end]):
                end += 1
            tokens.append((_UNQUOTED, text[pos:end]))
            pos = end
        elif is_space(ch):
            pos += 1
        else:
            raise MatcherError(f"{pos}:{pos + 1}: {ch}: invalid input")
    tokens.append((_EOF, ""))
    return tokens


def _utf8_matchers(text: str) -> list[Matcher]:
    tokens = _utf8_tokens(text)
    pos = 0

    def peek() -> tuple[int, str]:
        return tokens[pos]

    result: list[Matcher] = []
    has_open = peek()[0] == _OPEN
    if has_open:
        pos += 1
    while True:
        kind, value = peek()
        if kind in (_EOF, _CLOSE):
            break
        if kind not in (_QUOTED, _UNQUOTED):
            raise MatcherError(f"unexpected {value}: expected label name")
        name = go_unquote(value) if kind == _QUOTED else value
        pos += 1
        kind, op = peek()
        if kind != _OPERATOR:
            raise MatcherError(
                f"unexpected {op or 'end of input'}: expected an operator such as '=', '!=', '=~' or '!~'"
            )
        pos += 1
        kind, raw = peek()
        if kind not in (_QUOTED, _UNQUOTED):
            raise MatcherError(f"unexpected {raw or 'end of input'}: expected label value")
        label_value = go_unquote(raw) if kind == _QUOTED else raw
        pos += 1
        result.append(Matcher.create(name, op, label_value))  # type: ignore[arg-type]
        kind, value = peek()
        if kind == _COMMA:
            pos += 1
            continue
        if kind not in (_EOF, _CLOSE):
            raise MatcherError(f"unexpected {value}: expected a comma or close brace")
    kind, value = peek()
    if has_open:
        if kind != _CLOSE:
            raise MatcherError("expected close brace")
        pos += 1
    elif kind == _CLOSE:
        raise MatcherError("}: expected opening brace")
    if peek()[0] != _EOF:
        raise MatcherError(f"{peek()[1]}: expected end of input")
    return result


# ------------------------------------------------------------ public parsing


def parse_matchers(text: str, *, allow_empty: bool = False) -> list[Matcher]:
    """Parse one or more comma-separated matchers, optionally wrapped in braces.

    Alertmanager's fallback mode: the classic parser's result when it accepts
    the text, else the UTF-8 parser's.

    Args:
        text: e.g. ``'{severity="critical", service=~"pay.*"}'``.
        allow_empty: accept text holding no matcher (``""``, ``"{}"``) and
            return ``[]``, as Alertmanager's config does; by default that is
            an error, so a silence or rule can never match everything by accident.

    Raises:
        MatcherError: the text is not a matcher list (the classic parser's message).
    """
    try:
        found = _classic_matchers(text)
    except MatcherError as classic_error:
        try:
            found = _utf8_matchers(text)
        except MatcherError:
            raise classic_error from None
    if not found and not allow_empty:
        raise MatcherError(f"empty matcher: {text!r}")
    return found


def parse_matcher(text: str) -> Matcher:
    """Parse exactly one matcher (as ``amtool`` parses ``label=value`` arguments).

    The classic single-matcher parser does not split on commas: ``a=x,b=y``
    is one matcher whose value is ``x,b=y``.
    """
    try:
        return _classic_matcher(text)
    except MatcherError as classic_error:
        try:
            found = _utf8_matchers(text)
        except MatcherError:
            raise classic_error from None
        if len(found) != 1:
            raise MatcherError(f"expected one matcher, got {len(found)}: {text!r}") from None
        return found[0]
