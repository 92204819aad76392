"""Alertmanager label matchers: ``name="value"``, ``!=``, ``=~``, ``!~``.

Regex matchers are anchored (``^(?:re)$``) as in Alertmanager. Values may be
quoted (with ``\\"``, ``\\\\`` and ``\\n`` escapes) or bare. A string may hold
several comma-separated matchers, optionally in braces.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal, Mapping

__all__ = ["Matcher", "MatcherError", "parse_matchers", "parse_matcher", "matches_all"]

Op = Literal["=", "!=", "=~", "!~"]


class MatcherError(ValueError):
    """Raised for a string that is not a valid matcher."""


@dataclass(frozen=True)
class Matcher:
    """One label matcher."""

    name: str
    op: Op
    value: str
    _regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def create(cls, name: str, op: Op, value: str) -> "Matcher":
        """Build a matcher, compiling an anchored regex for ``=~``/``!~``."""
        regex = None
        if op in ("=~", "!~"):
            try:
                regex = re.compile(f"^(?:{value})$", re.DOTALL)
            except re.error as exc:
                raise MatcherError(f"bad regex {value!r}: {exc}") from None
        return cls(name, op, value, regex)

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether the label set satisfies this matcher (missing label = "")."""
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        assert self._regex is not None
        hit = self._regex.match(actual) is not None
        return hit if self.op == "=~" else not hit

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'{self.name}{self.op}"{escaped}"'


_NAME = re.compile(r"\s*([^\s{}!=~,\\\"'`]+)\s*(=~|!~|!=|=)\s*")


def _read_value(text: str, pos: int) -> tuple[str, int]:
    if pos < len(text) and text[pos] == '"':
        out = []
        pos += 1
        while pos < len(text):
            ch = text[pos]
            if ch == "\\" and pos + 1 < len(text):
                nxt = text[pos + 1]
                out.append({"n": "\n", "\\": "\\", '"': '"'}.get(nxt, "\\" + nxt))
                pos += 2
                continue
            if ch == '"':
                return "".join(out), pos + 1
            out.append(ch)
            pos += 1
        raise MatcherError(f"unterminated quoted value in {text!r}")
    end = pos
    while end < len(text) and text[end] not in ",}":
        end += 1
    return text[pos:end].strip(), end


def parse_matchers(text: str) -> list[Matcher]:
    """Parse one or more comma-separated matchers, optionally wrapped in braces.

    Raises:
        MatcherError: the text is not a matcher list.
    """
    body = text.strip()
    if body.startswith("{"):
        if not body.endswith("}"):
            raise MatcherError(f"missing closing brace in {text!r}")
        body = body[1:-1]
    result: list[Matcher] = []
    pos = 0
    while pos < len(body):
        if body[pos:].strip() == "":
            break
        m = _NAME.match(body, pos)
        if not m:
            raise MatcherError(f"not a matcher: {text!r} (expected name=\"value\")")
        value, pos = _read_value(body, m.end())
        result.append(Matcher.create(m.group(1), m.group(2), value))  # type: ignore[arg-type]
        while pos < len(body) and body[pos].isspace():
            pos += 1
        if pos < len(body):
            if body[pos] != ",":
                raise MatcherError(f"expected ',' after matcher in {text!r}")
            pos += 1
    if not result:
        raise MatcherError(f"empty matcher: {text!r}")
    return result


def parse_matcher(text: str) -> Matcher:
    """Parse exactly one matcher."""
    found = parse_matchers(text)
    if len(found) != 1:
        raise MatcherError(f"expected one matcher, got {len(found)}: {text!r}")
    return found[0]


def matches_all(matchers: list[Matcher], labels: Mapping[str, str]) -> bool:
    """True when every matcher matches (an empty list matches everything)."""
    return all(m.matches(labels) for m in matchers)
