"""Alertmanager inhibition: is a target alert muted by some other firing alert?

Semantics of Alertmanager's ``inhibit/inhibit.go``, for each rule:

1. The rule applies only if its **target** matchers match the target alert.
2. A firing alert inhibits the target if the rule's **source** matchers match
   it and every label named in ``equal`` has the same value on both alerts
   (a missing label counts as the empty string, so "missing on both" is equal).
3. If the target alert also matches the rule's source matchers, source alerts
   that match the **target** matchers too are disregarded. This is how an
   alert never inhibits itself (nor its peers) under a rule whose source and
   target overlap, e.g. ``severity=~"critical|warning"`` both sides.

Matchers are the union of the new-style ``source_matchers``/``target_matchers``
and the legacy ``source_match``/``source_match_re``/``target_match``/
``target_match_re`` (regexes anchored as Alertmanager anchors them).

Pure: the caller passes the label sets of the alerts firing now.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from workflows.policy.matchers import Matcher, matches_all, parse_matchers

__all__ = ["ParsedInhibitRule", "parse_rule", "inhibited", "inhibited_by"]


@dataclass(frozen=True)
class ParsedInhibitRule:
    """An inhibit rule with its matchers parsed."""

    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...]
    name: str | None = None


def _get(rule: Any, key: str) -> Any:
    if isinstance(rule, Mapping):
        return rule.get(key)
    return getattr(rule, key, None)


def _side(rule: Any, side: str) -> tuple[Matcher, ...]:
    found: list[Matcher] = []
    for name, value in (_get(rule, f"{side}_match") or {}).items():
        found.append(Matcher.create(name, "=", value))
    for name, value in (_get(rule, f"{side}_match_re") or {}).items():
        found.append(Matcher.create(name, "=~", f"^(?:{value})$"))
    for text in _get(rule, f"{side}_matchers") or []:
        found.extend(parse_matchers(text, allow_empty=True))
    return tuple(found)


def parse_rule(rule: Any) -> ParsedInhibitRule:
    """Parse a config ``InhibitRule`` (or a mapping with the same keys).

    Raises:
        MatcherError: a matcher or regex does not parse.
    """
    if isinstance(rule, ParsedInhibitRule):
        return rule
    return ParsedInhibitRule(
        source=_side(rule, "source"),
        target=_side(rule, "target"),
        equal=tuple(_get(rule, "equal") or ()),
        name=_get(rule, "name"),
    )


def inhibited_by(
    target_labels: Mapping[str, str], firing: Iterable[Mapping[str, str]], rules: Sequence[Any]
) -> list[tuple[int, dict[str, str]]]:
    """Every (rule index, firing alert's labels) pair that inhibits the target, in order."""
    sources = [dict(labels) for labels in firing]
    found: list[tuple[int, dict[str, str]]] = []
    for index, raw in enumerate(rules):
        rule = parse_rule(raw)
        if not matches_all(list(rule.target), target_labels):
            continue
        two_sided = matches_all(list(rule.source), target_labels)
        for alert in sources:
            if not matches_all(list(rule.source), alert):
                continue
            if any(alert.get(name, "") != target_labels.get(name, "") for name in rule.equal):
                continue
            if two_sided and matches_all(list(rule.target), alert):
                continue
            found.append((index, alert))
    return found


def inhibited(target_labels: Mapping[str, str], firing: Iterable[Mapping[str, str]], rules: Sequence[Any]) -> bool:
    """Whether any rule lets any firing alert inhibit the alert with ``target_labels``.

    Args:
        target_labels: the labels of the alert that might be muted.
        firing: the label sets of the alerts firing now (may include the target itself).
        rules: the config's ``inhibit_rules`` (models, mappings or parsed rules).
    """
    return bool(inhibited_by(target_labels, firing, rules))
