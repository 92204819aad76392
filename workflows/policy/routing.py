"""The Alertmanager route tree: which routes (and receivers) a label set reaches.

Semantics follow Alertmanager's ``dispatch/route.go``:

- A route matches when all its matchers match (``match``, ``match_re`` and
  ``matchers`` together; a missing label is the empty string). Children are
  tried in order; a matching child stops the search unless it has
  ``continue: true``; a matching node none of whose children match is itself
  the result. The result keeps route order and is not de-duplicated (a
  receiver reached by two routes appears twice, as in ``amtool``).
- ``receiver``, ``group_by``, ``group_wait``, ``group_interval`` and
  ``repeat_interval`` are inherited from the parent when not set (the root
  falls back to 30s / 5m / 4h). ``group_by`` counts as "not set" when it holds
  no label name, so ``group_by: []`` inherits and ``group_by: ['...']``
  inherits the list but groups by all labels. A child's own labels turn
  grouping-by-all off again.
- ``continue``, ``mute_time_intervals`` and ``active_time_intervals`` are NOT
  inherited: only the matched route's own intervals apply.
- Matchers are kept in Alertmanager's order (name, value, operator); legacy
  ``match_re`` values become ``^(?:re)$`` as Alertmanager stores them.

Muting (Tocsin's ``routes test --at``): a matched route is muted at an
instant when any of its ``mute_time_intervals`` is active, or when it has
``active_time_intervals`` and none of them is active. A muted route still
consumes the alert (no fallback to a sibling), it just does not notify:
its receiver is left out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from workflows.policy import timeintervals
from workflows.policy.durations import parse_duration
from workflows.policy.matchers import Matcher, matchers_string, matches_all, parse_matchers, sort_matchers

__all__ = [
    "RouteSpec",
    "RouteNode",
    "build_tree",
    "find_node",
    "match_routes",
    "receivers_for",
    "route_muted",
    "effective_repeat_interval",
    "matching_tree",
    "routes_test_output",
    "DEFAULT_GROUP_WAIT",
    "DEFAULT_GROUP_INTERVAL",
    "DEFAULT_REPEAT_INTERVAL",
]

DEFAULT_GROUP_WAIT = timedelta(seconds=30)
DEFAULT_GROUP_INTERVAL = timedelta(minutes=5)
DEFAULT_REPEAT_INTERVAL = timedelta(hours=4)


class RouteSpec(Protocol):
    """A route as the config states it: what :func:`build_tree` reads (``workflows.config.Route`` has it)."""

    @property
    def receiver(self) -> str | None: ...
    @property
    def group_by(self) -> Sequence[str] | None: ...
    @property
    def group_wait(self) -> str | None: ...
    @property
    def group_interval(self) -> str | None: ...
    @property
    def repeat_interval(self) -> str | None: ...
    @property
    def matchers(self) -> Sequence[str]: ...
    @property
    def match(self) -> Mapping[str, str]: ...
    @property
    def match_re(self) -> Mapping[str, str]: ...
    @property
    def continue_(self) -> bool: ...
    @property
    def routes(self) -> Sequence[RouteSpec]: ...
    @property
    def mute_time_intervals(self) -> Sequence[str]: ...
    @property
    def active_time_intervals(self) -> Sequence[str]: ...
    @property
    def escalation(self) -> str | None: ...


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
    children: list[RouteNode] = field(default_factory=list)

    def group_key_labels(self, labels: Mapping[str, str]) -> dict[str, str]:
        """The labels that form this route's group key for an alert."""
        if self.group_by_all:
            return dict(labels)
        return {name: labels[name] for name in self.group_by if name in labels}

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether this route's own matchers match."""
        return matches_all(self.matchers, labels)

    def walk(self) -> Iterable[RouteNode]:
        """This node and all its descendants, depth first, in order."""
        yield self
        for child in self.children:
            yield from child.walk()


def route_matchers(route: RouteSpec) -> list[Matcher]:
    """A config route's matchers, in Alertmanager's order."""
    found: list[Matcher] = []
    for name, value in route.match.items():
        found.append(Matcher.create(name, "=", value))
    for name, value in route.match_re.items():
        found.append(Matcher.create(name, "=~", f"^(?:{value})$"))
    for text in route.matchers:
        found.extend(parse_matchers(text, allow_empty=True))
    return sort_matchers(found)


def build_tree(route: RouteSpec, parent: RouteNode | None = None, path: str = "route") -> RouteNode:
    """Resolve inheritance over a config route tree."""
    own_labels: list[str] = []
    for name in route.group_by or []:
        if name != "..." and name not in own_labels:
            own_labels.append(name)
    if own_labels:
        group_by, group_by_all = own_labels, False
    else:
        group_by = list(parent.group_by) if parent else []
        group_by_all = parent.group_by_all if parent else False
        if route.group_by is not None and "..." in route.group_by:
            group_by_all = True

    def timer(value: str | None, inherited: timedelta | None, default: timedelta) -> timedelta:
        if value is not None:
            return parse_duration(value)
        return inherited if inherited is not None else default

    node = RouteNode(
        path=path,
        receiver=route.receiver or (parent.receiver if parent else ""),
        matchers=route_matchers(route),
        group_by=group_by,
        group_by_all=group_by_all,
        group_wait=timer(route.group_wait, parent.group_wait if parent else None, DEFAULT_GROUP_WAIT),
        group_interval=timer(route.group_interval, parent.group_interval if parent else None, DEFAULT_GROUP_INTERVAL),
        repeat_interval=timer(
            route.repeat_interval, parent.repeat_interval if parent else None, DEFAULT_REPEAT_INTERVAL
        ),
        continue_=route.continue_,
        mute_time_intervals=list(route.mute_time_intervals),
        active_time_intervals=list(route.active_time_intervals),
        escalation=route.escalation if route.escalation is not None else (parent.escalation if parent else None),
    )
    node.children = [build_tree(child, node, f"{path}.routes[{i}]") for i, child in enumerate(route.routes)]
    return node


def find_node(tree: RouteNode, path: str) -> RouteNode | None:
    """The node of ``tree`` whose :attr:`RouteNode.path` is ``path`` (e.g. ``route.routes[1]``), if any."""
    for node in tree.walk():
        if node.path == path:
            return node
    return None


def match_routes(node: RouteNode, labels: Mapping[str, str], *, root: bool = True) -> list[RouteNode]:
    """All routes an alert with ``labels`` is dispatched to, in route order (Alertmanager's ``Route.Match``)."""
    if not node.matches(labels):
        return []
    found: list[RouteNode] = []
    for child in node.children:
        sub = match_routes(child, labels, root=False)
        found.extend(sub)
        if sub and not child.continue_:
            break
    return found or [node]


def effective_repeat_interval(node: RouteNode) -> timedelta:
    """The repeat interval Alertmanager actually achieves for a route.

    A group is only flushed every ``group_interval``, and the repeat check runs
    at flushes, so ``repeat_interval`` is rounded *up* to a multiple of
    ``group_interval`` (9m with a 5m group interval repeats every 10m; 1m
    repeats every 5m — the case Alertmanager logs a warning for).
    """
    step = node.group_interval.total_seconds()
    repeat = node.repeat_interval.total_seconds()
    if step <= 0:
        return node.repeat_interval
    if repeat <= step:
        return node.group_interval
    return timedelta(seconds=math.ceil(round(repeat / step, 9)) * step)


def _intervals_by_name(time_intervals: Iterable[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for interval in time_intervals:
        name = interval.get("name") if isinstance(interval, Mapping) else getattr(interval, "name", None)
        if name is not None:
            out[name] = interval
    return out


def route_muted(node: RouteNode, time_intervals: Iterable[Any] | Mapping[str, Any], at: datetime) -> bool:
    """Whether a matched route is muted at ``at`` by its own mute/active time intervals.

    Raises:
        KeyError: the route names an interval that does not exist.
    """
    by_name = time_intervals if isinstance(time_intervals, Mapping) else _intervals_by_name(time_intervals)
    for name in node.mute_time_intervals:
        if timeintervals.active(by_name[name], at):
            return True
    if node.active_time_intervals:
        return not any(timeintervals.active(by_name[name], at) for name in node.active_time_intervals)
    return False


def receivers_for(
    route: RouteSpec | RouteNode,
    labels: Mapping[str, str],
    *,
    at: datetime | None = None,
    time_intervals: Iterable[Any] = (),
) -> list[str]:
    """Receiver names, in route order, for a label set (as ``amtool config routes test``).

    With ``at``, routes muted at that instant (see :func:`route_muted`) are left out.
    """
    tree = route if isinstance(route, RouteNode) else build_tree(route)
    nodes = match_routes(tree, labels)
    if at is not None:
        by_name = _intervals_by_name(time_intervals)
        nodes = [n for n in nodes if not route_muted(n, by_name, at)]
    return [node.receiver for node in nodes]


# ------------------------------------------------------------ amtool output


def _slug(node: RouteNode, receiver: bool) -> str:
    text = matchers_string(node.matchers) if node.matchers else "default-route"
    if receiver:
        text += "  receiver: " + node.receiver
    return text


def _render(root: str, nodes: list[tuple[str, list[Any]]]) -> str:
    """``github.com/xlab/treeprint``'s layout, as vendored by amtool 0.25 (multi-line values are not re-indented)."""
    lines = [root]

    def render(items: list[tuple[str, list[Any]]], prefix: str) -> None:
        for i, (value, children) in enumerate(items):
            last = i == len(items) - 1
            # treeprint draws the vertical link as "│" + two no-break spaces + a space.
            pad = prefix + ("    " if last else "│\u00a0\u00a0 ")
            lines.append(f"{prefix}{'└──' if last else '├──'} {value}")
            render(children, pad)

    render(nodes, "")
    return "\n".join(lines) + "\n"


def matching_tree(tree: RouteNode, labels: Mapping[str, str], *, muted: set[int] | None = None) -> str:
    """``amtool config routes test --tree``'s "Matching routes" block, byte for byte."""

    def build(node: RouteNode) -> tuple[str, list[Any]]:
        children = [build(child) for child in _matching_children(node, labels)]
        if children:
            return _slug(node, False), children
        value = _slug(node, True)
        if muted is not None and id(node) in muted:
            value += "  (muted)"
        return value, []

    return "Matching routes:\n" + _render(".", [build(tree)]) + "\n\n"


def _matching_children(node: RouteNode, labels: Mapping[str, str]) -> list[RouteNode]:
    out = []
    for child in node.children:
        if child.matches(labels):
            out.append(child)
            if not child.continue_:
                break
    return out


def routes_test_output(
    route: RouteSpec | RouteNode,
    labels: Mapping[str, str],
    *,
    tree: bool = False,
    at: datetime | None = None,
    time_intervals: Iterable[Any] = (),
) -> str:
    """What ``amtool config routes test [--tree] label=value ...`` prints (Tocsin adds ``--at``)."""
    root = route if isinstance(route, RouteNode) else build_tree(route)
    nodes = match_routes(root, labels)
    muted: set[int] | None = None
    if at is not None:
        by_name = _intervals_by_name(time_intervals)
        muted = {id(n) for n in nodes if route_muted(n, by_name, at)}
    out = matching_tree(root, labels, muted=muted) if tree else ""
    receivers = [n.receiver for n in nodes if muted is None or id(n) not in muted]
    return out + ",".join(receivers) + "\n"
