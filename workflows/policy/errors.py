"""Errors shared by the matcher modules (:mod:`.matchers`, :mod:`.gostrings`, :mod:`.re2`)."""

from __future__ import annotations

__all__ = ["MatcherError"]


class MatcherError(ValueError):
    """Raised for a string that is not a valid matcher (or Go string literal, or RE2 pattern)."""
