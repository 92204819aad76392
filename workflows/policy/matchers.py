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
UTF-8, Go escapes) or bare runs of characters other than whitespace and
``{}!=~,\\"'`\\``; whitespace between tokens is ignored.

Regular expressions use Go's RE2 syntax and are anchored as Alertmanager
anchors them (``^(?:re)$``). :func:`compile_go_regex` translates RE2 syntax
to an equivalent Python pattern (``.`` excludes ``\\n``, ``$`` is the end of
the text, ``\\d``/``\\w``/``\\s``/``\\b`` are ASCII, inline flags are scoped to
their group, ``(?U)`` swaps greediness) and rejects what RE2 rejects
(look-around, back-references, ``a**``, counts over 1000…). Unicode classes
are supported for general categories (``\\pL``, ``\\p{Lu}``…); Unicode script
classes (``\\p{Greek}``) are rejected as unsupported.

Everything here is pure and deterministic (safe inside workflows).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal, Mapping

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


class MatcherError(ValueError):
    """Raised for a string that is not a valid matcher."""


# ------------------------------------------------------------------ helpers

_GO_SPACE = frozenset("\t\n\v\f\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000") | frozenset(
    chr(c) for c in range(0x2000, 0x200B)
)


def _is_space(ch: str) -> bool:
    """Go's ``unicode.IsSpace``."""
    return ch in _GO_SPACE


def _trim_space(text: str) -> str:
    """Go's ``strings.TrimSpace``."""
    start, end = 0, len(text)
    while start < end and _is_space(text[start]):
        start += 1
    while end > start and _is_space(text[end - 1]):
        end -= 1
    return text[start:end]


def _is_reserved(ch: str) -> bool:
    return _is_space(ch) or ch in "{}!=~,\\\"'`"


_CLASSIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")


def is_classic_label_name(name: str) -> bool:
    """A classic Prometheus label name (``[a-zA-Z_][a-zA-Z0-9_]*``), as ``match:`` keys need."""
    return bool(_LABEL_NAME.match(name))


def is_valid_label_name(name: str) -> bool:
    """A label name Alertmanager ≥ 0.27 accepts (any non-empty UTF-8 text)."""
    return bool(name)


def _is_print(ch: str) -> bool:
    # Go's strconv.IsPrint: letters, marks, numbers, punctuation, symbols and ASCII space.
    return ch == " " or unicodedata.category(ch)[0] in "LMNPS"


def go_quote(text: str) -> str:
    """Go's ``strconv.Quote``: a double-quoted Go string literal."""
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif _is_print(ch):
            out.append(ch)
        elif ch in _GO_SIMPLE_ESCAPES_REV:
            out.append("\\" + _GO_SIMPLE_ESCAPES_REV[ch])
        else:
            code = ord(ch)
            if code < 0x20 or code == 0x7F:
                out.append(f"\\x{code:02x}")
            elif 0xD800 <= code <= 0xDFFF:
                out.append("\\ufffd")
            elif code < 0x10000:
                out.append(f"\\u{code:04x}")
            else:
                out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


_GO_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
_GO_SIMPLE_ESCAPES_REV = {v: k for k, v in _GO_SIMPLE_ESCAPES.items()}


def _go_unquote(token: str) -> str:
    """Go's ``strconv.Unquote`` for a double-quoted literal (plus the UTF-8 check)."""
    if len(token) < 2 or token[0] != '"' or token[-1] != '"':
        raise MatcherError(f"invalid quoted string {token}")
    body = token[1:-1]
    if "\n" in body:
        raise MatcherError(f"invalid quoted string {token}: contains a newline")
    out = bytearray()
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == '"':
            raise MatcherError(f"invalid quoted string {token}")
        if ch != "\\":
            out += ch.encode("utf-8", "surrogatepass")
            i += 1
            continue
        if i + 1 >= len(body):
            raise MatcherError(f"invalid quoted string {token}")
        esc = body[i + 1]
        i += 2
        if esc in _GO_SIMPLE_ESCAPES:
            out += _GO_SIMPLE_ESCAPES[esc].encode()
        elif esc in '\\"':
            out += esc.encode()
        elif esc in "xuU":
            size = {"x": 2, "u": 4, "U": 8}[esc]
            digits = body[i:i + size]
            if len(digits) != size or not all(c in "0123456789abcdefABCDEF" for c in digits):
                raise MatcherError(f"invalid quoted string {token}: bad \\{esc} escape")
            value = int(digits, 16)
            i += size
            if esc == "x":
                out.append(value)
            else:
                if value > 0x10FFFF or 0xD800 <= value <= 0xDFFF:
                    raise MatcherError(f"invalid quoted string {token}: bad \\{esc} escape")
                out += chr(value).encode()
        elif esc in "01234567":
            digits = body[i - 1:i + 2]
            if len(digits) != 3 or not all(c in "01234567" for c in digits):
                raise MatcherError(f"invalid quoted string {token}: bad octal escape")
            value = int(digits, 8)
            if value > 255:
                raise MatcherError(f"invalid quoted string {token}: bad octal escape")
            out.append(value)
            i += 2
        else:
            raise MatcherError(f"invalid quoted string {token}: unknown escape \\{esc}")
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError:
        raise MatcherError(f"quoted string contains invalid UTF-8 code points: {token}") from None


def _openmetrics_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def quote_meta(text: str) -> str:
    """Go's ``regexp.QuoteMeta``: a regex matching ``text`` literally."""
    return "".join("\\" + ch if ch in "\\.+*?()|[]{}^$" else ch for ch in text)


# ------------------------------------------------------------------ matcher


@dataclass(frozen=True)
class Matcher:
    """One label matcher."""

    name: str
    op: Op
    value: str
    _regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def create(cls, name: str, op: Op, value: str) -> "Matcher":
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
        return f'{self.name}{self.op}"{_openmetrics_escape(self.value)}"'


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
    last = _trim_space("".join(current))
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
                    raise MatcherError(f"{pos}:{pos + 1}: {text[pos:pos + 2]}: expected one of '=~'")
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
                raise MatcherError(f"{pos}:{size}: {text[pos:]}: missing end \"")
            tokens.append((_QUOTED, text[pos:end + 1]))
            pos = end + 1
        elif not _is_reserved(ch):
            end = pos
            while end < size and not _is_reserved(text[end]):
                end += 1
            tokens.append((_UNQUOTED, text[pos:end]))
            pos = end
        elif _is_space(ch):
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
        name = _go_unquote(value) if kind == _QUOTED else value
        pos += 1
        kind, op = peek()
        if kind != _OPERATOR:
            raise MatcherError(f"unexpected {op or 'end of input'}: expected an operator such as '=', '!=', '=~' or '!~'")
        pos += 1
        kind, raw = peek()
        if kind not in (_QUOTED, _UNQUOTED):
            raise MatcherError(f"unexpected {raw or 'end of input'}: expected label value")
        label_value = _go_unquote(raw) if kind == _QUOTED else raw
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


# ------------------------------------------------------- Go regex → Python

_ASCII_DIGIT = [(0x30, 0x39)]
_ASCII_SPACE = [(0x09, 0x0A), (0x0C, 0x0D), (0x20, 0x20)]
_ASCII_WORD = [(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)]
_PERL = {"d": _ASCII_DIGIT, "s": _ASCII_SPACE, "w": _ASCII_WORD}
_POSIX = {
    "alnum": [(0x30, 0x39), (0x41, 0x5A), (0x61, 0x7A)],
    "alpha": [(0x41, 0x5A), (0x61, 0x7A)],
    "ascii": [(0x00, 0x7F)],
    "blank": [(0x09, 0x09), (0x20, 0x20)],
    "cntrl": [(0x00, 0x1F), (0x7F, 0x7F)],
    "digit": [(0x30, 0x39)],
    "graph": [(0x21, 0x7E)],
    "lower": [(0x61, 0x7A)],
    "print": [(0x20, 0x7E)],
    "punct": [(0x21, 0x2F), (0x3A, 0x40), (0x5B, 0x60), (0x7B, 0x7E)],
    "space": [(0x09, 0x0D), (0x20, 0x20)],
    "upper": [(0x41, 0x5A)],
    "word": _ASCII_WORD,
    "xdigit": [(0x30, 0x39), (0x41, 0x46), (0x61, 0x66)],
}
_MAX_RUNE = 0x10FFFF
_WORD_CLASS = "[0-9A-Za-z_]"
_ASCII_B = rf"(?:(?<!{_WORD_CLASS})(?={_WORD_CLASS})|(?<={_WORD_CLASS})(?!{_WORD_CLASS}))"
_ASCII_NOT_B = rf"(?:(?<={_WORD_CLASS})(?={_WORD_CLASS})|(?<!{_WORD_CLASS})(?!{_WORD_CLASS}))"


@lru_cache(maxsize=1)
def _unicode_categories() -> dict[str, list[tuple[int, int]]]:
    ranges: dict[str, list[tuple[int, int]]] = {}
    start, current = 0, unicodedata.category("\0")
    for code in range(1, _MAX_RUNE + 2):
        cat = unicodedata.category(chr(code)) if code <= _MAX_RUNE else None
        if cat != current:
            ranges.setdefault(current, []).append((start, code - 1))
            start, current = code, cat  # type: ignore[assignment]
    return ranges


def _unicode_class(name: str) -> list[tuple[int, int]]:
    if name == "Any":
        return [(0, _MAX_RUNE)]
    cats = _unicode_categories()
    if len(name) == 2 and name in cats:
        return list(cats[name])
    if len(name) == 1 and any(c[0] == name for c in cats):
        return _normalize([r for c, rs in cats.items() if c[0] == name for r in rs])
    raise MatcherError(f"bad regex: unsupported Unicode class \\p{{{name}}} (Tocsin supports general"
                       " categories such as \\pL, \\p{Lu}, not scripts)")


def _normalize(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def _negate(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    nxt = 0
    for lo, hi in _normalize(ranges):
        if lo > nxt:
            out.append((nxt, lo - 1))
        nxt = hi + 1
    if nxt <= _MAX_RUNE:
        out.append((nxt, _MAX_RUNE))
    return out


def _emit_literal(code: int) -> str:
    return chr(code) if code < 0x80 and chr(code).isalnum() else f"\\U{code:08X}"


def _emit_class(ranges: list[tuple[int, int]]) -> str:
    ranges = _normalize(ranges)
    if not ranges:
        return "(?!)"
    body = "".join(
        f"\\U{lo:08X}" if lo == hi else f"\\U{lo:08X}-\\U{hi:08X}" for lo, hi in ranges
    )
    return f"[{body}]"


_CASED_LIMIT = 0x20000  # no code point above has case variants


def _fold_key(ch: str) -> str:
    folded = ch.casefold()
    if len(folded) == 1:
        return folded
    lower = ch.lower()
    return lower if len(lower) == 1 else ch


@lru_cache(maxsize=1)
def _fold_orbits() -> tuple[list[int], dict[int, tuple[int, ...]]]:
    """Simple case-folding orbits (Go's ``unicode.SimpleFold``), for cased code points."""
    groups: dict[str, list[int]] = {}
    for code in range(_CASED_LIMIT):
        ch = chr(code)
        if 0xD800 <= code <= 0xDFFF:
            continue
        key = _fold_key(ch)
        if key != ch or ch.upper() != ch or ch.lower() != ch:
            groups.setdefault(key, []).append(code)
    orbits: dict[int, tuple[int, ...]] = {}
    for key, members in groups.items():
        orbit = set(members)
        if len(key) == 1:
            orbit.add(ord(key))
        if len(orbit) > 1:
            for code in orbit:
                orbits[code] = tuple(sorted(orbit))
    return sorted(orbits), orbits


def _fold_ranges(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    import bisect

    cased, orbits = _fold_orbits()
    extra: list[tuple[int, int]] = []
    for lo, hi in ranges:
        for code in cased[bisect.bisect_left(cased, lo):bisect.bisect_right(cased, hi)]:
            extra.extend((c, c) for c in orbits[code])
    return _normalize(list(ranges) + extra)


def _fold_negate(ranges: list[tuple[int, int]], fold: bool, negate: bool) -> list[tuple[int, int]]:
    if fold:
        ranges = _fold_ranges(ranges)
    return _negate(ranges) if negate else list(ranges)


class _GoRegex:
    """A one-pass translator from Go RE2 syntax to a Python ``re`` pattern."""

    def __init__(self, pattern: str):
        self.src = pattern
        self.pos = 0

    def error(self, message: str) -> MatcherError:
        return MatcherError(f"bad regex: {message} in `{self.src}`")

    def peek(self, offset: int = 0) -> str:
        index = self.pos + offset
        return self.src[index] if index < len(self.src) else ""

    # -- escapes ------------------------------------------------------------

    def _escape_char(self) -> int:
        """After a backslash: a literal code point (Go's parseEscape)."""
        ch = self.peek()
        if not ch:
            raise self.error("trailing backslash at end of expression")
        self.pos += 1
        if ch in "1234567":
            if not self.peek() or self.peek() not in "01234567":
                raise self.error(f"invalid escape sequence: `\\{ch}`")
        if ch in "01234567":
            digits = ch
            while len(digits) < 3 and self.peek() and self.peek() in "01234567":
                digits += self.peek()
                self.pos += 1
            return int(digits, 8)
        if ch == "x":
            if self.peek() == "{":
                end = self.src.find("}", self.pos)
                digits = self.src[self.pos + 1:end] if end >= 0 else ""
                if end < 0 or not digits or not all(c in "0123456789abcdefABCDEF" for c in digits):
                    raise self.error("invalid escape sequence: `\\x`")
                value = int(digits, 16)
                if value > _MAX_RUNE:
                    raise self.error("invalid escape sequence: `\\x`")
                self.pos = end + 1
                return value
            digits = self.src[self.pos:self.pos + 2]
            if len(digits) != 2 or not all(c in "0123456789abcdefABCDEF" for c in digits):
                raise self.error("invalid escape sequence: `\\x`")
            self.pos += 2
            return int(digits, 16)
        if ch in _GO_SIMPLE_ESCAPES and ch != "b":
            return ord(_GO_SIMPLE_ESCAPES[ch])
        if ord(ch) < 0x80 and not ch.isalnum():
            return ord(ch)
        raise self.error(f"invalid escape sequence: `\\{ch}`")

    def _class_escape(self) -> tuple[list[tuple[int, int]], bool] | None:
        """``\\d``-style or ``\\p``-style class after a backslash as (ranges, negated), else None."""
        ch = self.peek()
        if ch.lower() in _PERL:
            self.pos += 1
            return list(_PERL[ch.lower()]), ch.isupper()
        if ch in ("p", "P"):
            self.pos += 1
            name = self.peek()
            if not name:
                raise self.error("invalid character class range: `\\p`")
            if name == "{":
                end = self.src.find("}", self.pos)
                if end < 0:
                    raise self.error("invalid character class range")
                name = self.src[self.pos + 1:end]
                self.pos = end + 1
            else:
                self.pos += 1
            negate = ch == "P"
            if name.startswith("^"):
                negate, name = not negate, name[1:]
            return _unicode_class(name), negate
        return None

    # -- classes ------------------------------------------------------------

    def _parse_class(self, fold: bool) -> str:
        self.pos += 1  # '['
        negate = False
        if self.peek() == "^":
            negate = True
            self.pos += 1
        ranges: list[tuple[int, int]] = []
        first = True
        while first or self.peek() != "]":
            if not self.peek():
                raise self.error("missing closing ]")
            first = False
            if self.src.startswith("[:", self.pos):
                end = self.src.find(":]", self.pos + 2)
                if end >= 0:
                    name = self.src[self.pos + 2:end]
                    neg = name.startswith("^")
                    base = name[1:] if neg else name
                    if base not in _POSIX:
                        raise self.error(f"invalid character class range: `[:{name}:]`")
                    ranges += _fold_negate(_POSIX[base], fold, neg)
                    self.pos = end + 2
                    continue
            if self.peek() == "\\":
                self.pos += 1
                cls = self._class_escape()
                if cls is not None:
                    ranges += _fold_negate(cls[0], fold, cls[1])
                    continue
                lo = self._escape_char()
            else:
                lo = ord(self.peek())
                self.pos += 1
            hi = lo
            if self.peek() == "-" and self.peek(1) not in ("]", ""):
                self.pos += 1
                if self.peek() == "\\":
                    self.pos += 1
                    hi = self._escape_char()
                else:
                    hi = ord(self.peek())
                    self.pos += 1
                if hi < lo:
                    raise self.error("invalid character class range")
            ranges += _fold_negate([(lo, hi)], fold, False)
        self.pos += 1  # ']'
        return _emit_class(_negate(ranges) if negate else ranges)

    # -- the main loop ------------------------------------------------------

    def translate(self) -> str:
        flags = {"i": False, "m": False, "s": False, "U": False}
        # Each frame: (items of the current sequence, opener, flags to restore).
        stack: list[tuple[list[str | None], str, dict[str, bool]]] = []
        items: list[str | None] = []  # None marks '|'
        last_quantified = False

        def literal(code: int) -> str:
            if flags["i"]:
                folded = _fold_ranges([(code, code)])
                if len(folded) > 1 or folded[0] != (code, code):
                    return _emit_class(folded)
            return _emit_literal(code)

        while self.pos < len(self.src):
            ch = self.src[self.pos]
            if ch in "*+?{":
                if ch == "{":
                    found = re.compile(r"\{(\d+)(?:(,)(\d*))?\}").match(self.src, self.pos)
                    if not found:
                        items.append(literal(ord("{")))
                        self.pos += 1
                        last_quantified = False
                        continue
                    low = int(found.group(1))
                    high = low if not found.group(2) else (int(found.group(3)) if found.group(3) else -1)
                    if low > 1000 or high > 1000 or (high >= 0 and low > high):
                        raise self.error(f"invalid repeat count: `{found.group(0)}`")
                    quant = "{%d}" % low if not found.group(2) else ("{%d,}" % low if high < 0 else "{%d,%d}" % (low, high))
                    self.pos = found.end()
                else:
                    quant = ch
                    self.pos += 1
                lazy = False
                if self.peek() == "?":
                    lazy = True
                    self.pos += 1
                if not items or items[-1] is None:
                    raise self.error(f"missing argument to repetition operator: `{quant}`")
                if last_quantified:
                    raise self.error(f"invalid nested repetition operator: `{quant}`")
                if flags["U"]:
                    lazy = not lazy
                items[-1] = f"(?:{items[-1]}){quant}{'?' if lazy else ''}"
                last_quantified = True
                continue
            last_quantified = False
            self.pos += 1
            if ch == "|":
                items.append(None)
            elif ch == "(":
                if self.peek() == "?":
                    rest = self.src[self.pos + 1:]
                    if rest.startswith("P<") or rest.startswith("<"):
                        start = self.pos + (3 if rest.startswith("P<") else 2)
                        end = self.src.find(">", start)
                        name = self.src[start:end] if end >= 0 else ""
                        if end < 0 or not name or not re.fullmatch(r"[A-Za-z0-9_]+", name):
                            raise self.error("invalid named capture")
                        self.pos = end + 1
                        stack.append((items, "(?:", dict(flags)))
                        items = []
                        continue
                    found = re.compile(r"\?([imsU]*)(?:-([imsU]*))?([:)])").match(self.src, self.pos)
                    if not found or (found.group(2) is not None and not found.group(2)):
                        raise self.error("invalid or unsupported Perl syntax")
                    self.pos = found.end()
                    new = dict(flags)
                    for f in found.group(1):
                        new[f] = True
                    for f in found.group(2) or "":
                        new[f] = False
                    if found.group(3) == ")":
                        flags.update(new)
                        continue
                    stack.append((items, "(?:", dict(flags)))
                    flags.update(new)
                    items = []
                    continue
                stack.append((items, "(?:", dict(flags)))
                items = []
            elif ch == ")":
                if not stack:
                    raise self.error("unexpected )")
                body = self._join(items)
                items, opener, saved = stack.pop()
                flags.clear()
                flags.update(saved)
                items.append(f"{opener}{body})")
            elif ch == "[":
                self.pos -= 1
                items.append(self._parse_class(flags["i"]))
            elif ch == ".":
                items.append("(?s:.)" if flags["s"] else "[^\\n]")
            elif ch == "^":
                items.append("(?m:^)" if flags["m"] else "\\A")
            elif ch == "$":
                items.append("(?m:$)" if flags["m"] else "\\Z")
            elif ch == "\\":
                nxt = self.peek()
                if nxt == "A":
                    self.pos += 1
                    items.append("\\A")
                elif nxt == "z":
                    self.pos += 1
                    items.append("\\Z")
                elif nxt == "b":
                    self.pos += 1
                    items.append(_ASCII_B)
                elif nxt == "B":
                    self.pos += 1
                    items.append(_ASCII_NOT_B)
                elif nxt == "C":
                    raise self.error("invalid escape sequence: `\\C`")
                elif nxt == "Q":
                    end = self.src.find("\\E", self.pos + 1)
                    text = self.src[self.pos + 1:] if end < 0 else self.src[self.pos + 1:end]
                    self.pos = len(self.src) if end < 0 else end + 2
                    for c in text:
                        items.append(literal(ord(c)))
                    last_quantified = False
                else:
                    cls = self._class_escape()
                    if cls is not None:
                        items.append(_emit_class(_fold_negate(cls[0], flags["i"], cls[1])))
                    else:
                        items.append(literal(self._escape_char()))
            else:
                items.append(literal(ord(ch)))
        if stack:
            raise self.error("missing closing )")
        return self._join(items)

    @staticmethod
    def _join(items: list[str | None]) -> str:
        return "".join("|" if item is None else item for item in items)


@lru_cache(maxsize=4096)
def compile_go_regex(pattern: str) -> re.Pattern[str]:
    """Compile a Go (RE2) regular expression into an equivalent Python pattern.

    Use ``.search()`` for Go's ``MatchString`` (unanchored unless the pattern
    anchors itself, as matchers do with ``^(?:…)$``).

    Raises:
        MatcherError: the pattern is not valid RE2, or uses a feature Tocsin
            does not support (Unicode script classes).
    """
    translated = _GoRegex(pattern).translate()
    try:
        return re.compile(translated)
    except re.error as exc:  # pragma: no cover - translation emits valid Python
        raise MatcherError(f"bad regex: {exc} in `{pattern}`") from None
