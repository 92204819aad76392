"""The Alertmanager route tree: which routes (and receivers) a label set reaches.

Semantics follow Alertmanager's ``dispatch/route.go``: a route matches when all
its matchers do; matching children are tried in order, the first match stops
the search unless it has ``continue: true``; a matching node with no matching
child is itself the result. ``receiver``, ``group_by`` and the group timers are
inherited from the parent; ``mute_time_intervals`` / ``active_time_intervals``
are not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Mapping

from workflows.config import Route
from workflows.policy.durations import parse_duration
from workflows.policy.matchers import Matcher, matches_all, parse_matchers

__all__ = ["RouteNode", "build_tree", "match_routes", "receivers_for", "DEFAULT_GROUP_WAIT",
           "DEFAULT_GROUP_INTERVAL", "DEFAULT_REPEAT_INTERVAL"]

DEFAULT_GROUP_WAIT = timedelta(seconds=30)
DEFAULT_GROUP_INTERVAL = timedelta(minutes=5)
DEFAULT_REPEAT_INTERVAL = timedelta(hours=4)


@dataclass
class RouteNode:
    """A route with its inherited options resolved."""

    path: str
    """Key path in the config, e.g. ``route.routes[1]``."""
    receiver: str
    matchers: list[Matcher]
    group_by: list[str]
    group_by_all: bool
    group_wait: timedelta
    group_interval: timedelta
    repeat_interval: timedelta
    continue_: bool
    mute_time_intervals: list[str]
    active_time_intervals: list[str]
    escalation: str | None
    children: list["RouteNode"] = field(default_factory=list)

    def group_key_labels(self, labels: Mapping[str, str]) -> dict[str, str]:
        """The labels that form this route's group key for an alert."""
        if self.group_by_all:
            return dict(labels)
        return {name: labels[name] for name in self.group_by if name in labels}


def _route_matchers(route: Route) -> list[Matcher]:
    found: list[Matcher] = []
    for name, value in sorted(route.match.items()):
        found.append(Matcher.create(name, "=", value))
    for name, value in sorted(route.match_re.items()):
        found.append(Matcher.create(name, "=~", value))
    for text in route.matchers:
        found.extend(parse_matchers(text))
    return found


def build_tree(route: Route, parent: RouteNode | None = None, path: str = "route") -> RouteNode:
    """Resolve inheritance over a config route tree."""
    group_by = route.group_by if route.group_by is not None else (parent.group_by if parent else [])
    group_by_all = "..." in group_by if route.group_by is not None else (parent.group_by_all if parent else False)
    repeat = (
        parse_duration(route.repeat_interval)
        if route.repeat_interval
        else (parent.repeat_interval if parent else DEFAULT_REPEAT_INTERVAL)
    )
    node = RouteNode(
        path=path,
        receiver=route.receiver or (parent.receiver if parent else ""),
        matchers=_route_matchers(route),
        group_by=[g for g in group_by if g != "..."],
        group_by_all=group_by_all,
        group_wait=parse_duration(route.group_wait) if route.group_wait else (
            parent.group_wait if parent else DEFAULT_GROUP_WAIT),
        group_interval=parse_duration(route.group_interval) if route.group_interval else (
            parent.group_interval if parent else DEFAULT_GROUP_INTERVAL),
        repeat_interval=repeat,
        continue_=route.continue_,
        mute_time_intervals=list(route.mute_time_intervals),
        active_time_intervals=list(route.active_time_intervals),
        escalation=route.escalation if route.escalation is not None else (parent.escalation if parent else None),
    )
    node.children = [build_tree(child, node, f"{path}.routes[{i}]") for i, child in enumerate(route.routes)]
    return node


def match_routes(node: RouteNode, labels: Mapping[str, str], *, root: bool = True) -> list[RouteNode]:
    """All routes an alert with ``labels`` is dispatched to, in route order."""
    if not root and not matches_all(node.matchers, labels):
        return []
    found: list[RouteNode] = []
    for child in node.children:
        sub = match_routes(child, labels, root=False)
        if sub:
            found.extend(sub)
            if not child.continue_:
                break
    return found or [node]


def receivers_for(route: Route, labels: Mapping[str, str]) -> list[str]:
    """Receiver names, in route order, for a label set (as ``amtool config routes test``)."""
    return [node.receiver for node in match_routes(build_tree(route), labels)]
