"""Go (RE2) regular expressions, translated to equivalent Python ``re`` patterns.

Alertmanager matchers and ``match_re`` values are Go regular expressions,
anchored as Alertmanager anchors them (``^(?:re)$``). :func:`compile_go_regex`
translates RE2 syntax to an equivalent Python pattern (``.`` excludes ``\\n``,
``$`` is the end of the text, ``\\d``/``\\w``/``\\s``/``\\b`` are ASCII, inline
flags are scoped to their group, ``(?U)`` swaps greediness) and rejects what
RE2 rejects (look-around, back-references, ``a**``, counts over 1000…).
Unicode classes are supported for general categories (``\\pL``,
``\\p{Lu}``…); Unicode script classes (``\\p{Greek}``) are rejected as
unsupported.

Everything here is pure and deterministic (safe inside workflows).
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from functools import lru_cache

from workflows.policy.errors import MatcherError
from workflows.policy.gostrings import GO_SIMPLE_ESCAPES

__all__ = ["compile_go_regex", "quote_meta"]


def quote_meta(text: str) -> str:
    """Go's ``regexp.QuoteMeta``: a regex matching ``text`` literally."""
    return "".join("\\" + ch if ch in "\\.+*?()|[]{}^$" else ch for ch in text)


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
_ASSERTIONS = {"A": "\\A", "z": "\\Z", "b": _ASCII_B, "B": _ASCII_NOT_B}
_COUNT = re.compile(r"\{(\d+)(?:(,)(\d*))?\}")
_FLAGS = re.compile(r"\?([imsU]*)(?:-([imsU]*))?([:)])")


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
    raise MatcherError(
        f"bad regex: unsupported Unicode class \\p{{{name}}} (Tocsin supports general"
        " categories such as \\pL, \\p{Lu}, not scripts)"
    )


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
    body = "".join(f"\\U{lo:08X}" if lo == hi else f"\\U{lo:08X}-\\U{hi:08X}" for lo, hi in ranges)
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
    cased, orbits = _fold_orbits()
    extra: list[tuple[int, int]] = []
    for lo, hi in ranges:
        for code in cased[bisect.bisect_left(cased, lo) : bisect.bisect_right(cased, hi)]:
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
        self.flags = {"i": False, "m": False, "s": False, "U": False}
        self.items: list[str | None] = []
        """The current sequence's translated items; ``None`` marks ``|``."""
        self.stack: list[tuple[list[str | None], str, dict[str, bool]]] = []
        """Open groups: (items of the enclosing sequence, opener, flags to restore)."""

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
                digits = self.src[self.pos + 1 : end] if end >= 0 else ""
                if end < 0 or not digits or not all(c in "0123456789abcdefABCDEF" for c in digits):
                    raise self.error("invalid escape sequence: `\\x`")
                value = int(digits, 16)
                if value > _MAX_RUNE:
                    raise self.error("invalid escape sequence: `\\x`")
                self.pos = end + 1
                return value
            digits = self.src[self.pos : self.pos + 2]
            if len(digits) != 2 or not all(c in "0123456789abcdefABCDEF" for c in digits):
                raise self.error("invalid escape sequence: `\\x`")
            self.pos += 2
            return int(digits, 16)
        if ch in GO_SIMPLE_ESCAPES and ch != "b":
            return ord(GO_SIMPLE_ESCAPES[ch])
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
                name = self.src[self.pos + 1 : end]
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
                    name = self.src[self.pos + 2 : end]
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
        """The whole pattern as a Python pattern.

        Raises:
            MatcherError: the pattern is not valid RE2 (or not supported).
        """
        last_quantified = False
        while self.pos < len(self.src):
            ch = self.src[self.pos]
            if ch in "*+?{":
                last_quantified = self._repeat(ch, last_quantified)
                continue
            last_quantified = False
            self.pos += 1
            self._atom(ch)
        if self.stack:
            raise self.error("missing closing )")
        return self._join(self.items)

    def _literal(self, code: int) -> str:
        if self.flags["i"]:
            folded = _fold_ranges([(code, code)])
            if len(folded) > 1 or folded[0] != (code, code):
                return _emit_class(folded)
        return _emit_literal(code)

    def _repeat(self, ch: str, last_quantified: bool) -> bool:
        """A repetition operator at ``self.pos``; returns whether the last item is now quantified."""
        if ch == "{":
            found = _COUNT.match(self.src, self.pos)
            if not found:
                self.items.append(self._literal(ord("{")))
                self.pos += 1
                return False
            low = int(found.group(1))
            high = low if not found.group(2) else (int(found.group(3)) if found.group(3) else -1)
            if low > 1000 or high > 1000 or (high >= 0 and low > high):
                raise self.error(f"invalid repeat count: `{found.group(0)}`")
            if not found.group(2):
                quant = f"{{{low}}}"
            elif high < 0:
                quant = f"{{{low},}}"
            else:
                quant = f"{{{low},{high}}}"
            self.pos = found.end()
        else:
            quant = ch
            self.pos += 1
        lazy = False
        if self.peek() == "?":
            lazy = True
            self.pos += 1
        if not self.items or self.items[-1] is None:
            raise self.error(f"missing argument to repetition operator: `{quant}`")
        if last_quantified:
            raise self.error(f"invalid nested repetition operator: `{quant}`")
        if self.flags["U"]:
            lazy = not lazy
        self.items[-1] = f"(?:{self.items[-1]}){quant}{'?' if lazy else ''}"
        return True

    def _atom(self, ch: str) -> None:
        """Translate the character ``ch`` just consumed (and whatever it introduces)."""
        if ch == "|":
            self.items.append(None)
        elif ch == "(":
            self._open_group()
        elif ch == ")":
            self._close_group()
        elif ch == "[":
            self.pos -= 1
            self.items.append(self._parse_class(self.flags["i"]))
        elif ch == ".":
            self.items.append("(?s:.)" if self.flags["s"] else "[^\\n]")
        elif ch == "^":
            self.items.append("(?m:^)" if self.flags["m"] else "\\A")
        elif ch == "$":
            self.items.append("(?m:$)" if self.flags["m"] else "\\Z")
        elif ch == "\\":
            self._escape_atom()
        else:
            self.items.append(self._literal(ord(ch)))

    def _push(self) -> None:
        """Start a group: save the current sequence and flags."""
        self.stack.append((self.items, "(?:", dict(self.flags)))
        self.items = []

    def _open_group(self) -> None:
        """After ``(``: a capture, a named capture, a flag group ``(?i:…)`` or flags ``(?i)``."""
        if self.peek() != "?":
            self._push()
            return
        rest = self.src[self.pos + 1 :]
        if rest.startswith("P<") or rest.startswith("<"):
            start = self.pos + (3 if rest.startswith("P<") else 2)
            end = self.src.find(">", start)
            name = self.src[start:end] if end >= 0 else ""
            if end < 0 or not name or not re.fullmatch(r"[A-Za-z0-9_]+", name):
                raise self.error("invalid named capture")
            self.pos = end + 1
            self._push()
            return
        found = _FLAGS.match(self.src, self.pos)
        if not found or (found.group(2) is not None and not found.group(2)):
            raise self.error("invalid or unsupported Perl syntax")
        self.pos = found.end()
        new = dict(self.flags)
        for f in found.group(1):
            new[f] = True
        for f in found.group(2) or "":
            new[f] = False
        if found.group(3) == ")":
            self.flags.update(new)
            return
        self._push()
        self.flags.update(new)

    def _close_group(self) -> None:
        if not self.stack:
            raise self.error("unexpected )")
        body = self._join(self.items)
        self.items, opener, saved = self.stack.pop()
        self.flags.clear()
        self.flags.update(saved)
        self.items.append(f"{opener}{body})")

    def _escape_atom(self) -> None:
        """After a backslash outside a class: an assertion, ``\\Q…\\E``, a class or a literal."""
        nxt = self.peek()
        if nxt in _ASSERTIONS:
            self.pos += 1
            self.items.append(_ASSERTIONS[nxt])
        elif nxt == "C":
            raise self.error("invalid escape sequence: `\\C`")
        elif nxt == "Q":
            end = self.src.find("\\E", self.pos + 1)
            text = self.src[self.pos + 1 :] if end < 0 else self.src[self.pos + 1 : end]
            self.pos = len(self.src) if end < 0 else end + 2
            for c in text:
                self.items.append(self._literal(ord(c)))
        else:
            cls = self._class_escape()
            if cls is not None:
                self.items.append(_emit_class(_fold_negate(cls[0], self.flags["i"], cls[1])))
            else:
                self.items.append(self._literal(self._escape_char()))

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
