"""Go's lexical rules for strings, as Alertmanager's matcher parsers apply them.

``unicode.IsSpace``, ``strings.TrimSpace``, ``strconv.IsPrint``,
``strconv.Quote`` and ``strconv.Unquote`` (double-quoted literals only), plus
the OpenMetrics escaping Alertmanager uses when it prints a matcher value.

Everything here is pure and deterministic (safe inside workflows).
"""

from __future__ import annotations

import unicodedata

from workflows.policy.errors import MatcherError

__all__ = [
    "GO_SIMPLE_ESCAPES",
    "is_space",
    "trim_space",
    "is_print",
    "go_quote",
    "go_unquote",
    "openmetrics_escape",
]

_GO_SPACE = frozenset("\t\n\v\f\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000") | frozenset(
    chr(c) for c in range(0x2000, 0x200B)
)

GO_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
"""Go's one-letter escapes (``\\n``…) and the character each stands for."""
_GO_SIMPLE_ESCAPES_REV = {v: k for k, v in GO_SIMPLE_ESCAPES.items()}


def is_space(ch: str) -> bool:
    """Go's ``unicode.IsSpace``."""
    return ch in _GO_SPACE


def trim_space(text: str) -> str:
    """Go's ``strings.TrimSpace``."""
    start, end = 0, len(text)
    while start < end and is_space(text[start]):
        start += 1
    while end > start and is_space(text[end - 1]):
        end -= 1
    return text[start:end]


def is_print(ch: str) -> bool:
    """Go's ``strconv.IsPrint``: letters, marks, numbers, punctuation, symbols and ASCII space."""
    return ch == " " or unicodedata.category(ch)[0] in "LMNPS"


def go_quote(text: str) -> str:
    """Go's ``strconv.Quote``: a double-quoted Go string literal."""
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif is_print(ch):
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


def go_unquote(token: str) -> str:
    """Go's ``strconv.Unquote`` for a double-quoted literal (plus the UTF-8 check).

    Raises:
        MatcherError: ``token`` is not a valid double-quoted Go string, or
            its bytes are not valid UTF-8.
    """
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
        i = _unescape(token, body, i + 1, out)
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError:
        raise MatcherError(f"quoted string contains invalid UTF-8 code points: {token}") from None


def _unescape(token: str, body: str, at: int, out: bytearray) -> int:
    """Append the bytes of the escape whose letter is ``body[at]``; return the index after it."""
    esc = body[at]
    i = at + 1
    if esc in GO_SIMPLE_ESCAPES:
        out += GO_SIMPLE_ESCAPES[esc].encode()
    elif esc in '\\"':
        out += esc.encode()
    elif esc in "xuU":
        size = {"x": 2, "u": 4, "U": 8}[esc]
        digits = body[i : i + size]
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
        digits = body[i - 1 : i + 2]
        if len(digits) != 3 or not all(c in "01234567" for c in digits):
            raise MatcherError(f"invalid quoted string {token}: bad octal escape")
        value = int(digits, 8)
        if value > 255:
            raise MatcherError(f"invalid quoted string {token}: bad octal escape")
        out.append(value)
        i += 2
    else:
        raise MatcherError(f"invalid quoted string {token}: unknown escape \\{esc}")
    return i


def openmetrics_escape(text: str) -> str:
    """Escape ``\\``, newline and ``"`` as Alertmanager does when it prints a matcher value."""
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
