"""Route-tree rules a config must follow beyond its schema (Alertmanager's ``config.Load``), plus warnings.

Errors: the root route needs a receiver and may have no matchers, no
``continue`` and no time intervals; every receiver, escalation policy and time
interval a route names must exist; legacy ``match``/``match_re`` keys must be
classic label names. Warnings: a route after a sibling that has no matchers and
no ``continue`` is unreachable (that sibling catches every alert); a
``repeat_interval`` shorter than, or not a multiple of, its ``group_interval``
is not what it says (see :func:`workflows.policy.routing.effective_repeat_interval`).

Pure: the route is read through :class:`~workflows.policy.routing.RouteSpec`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import timedelta
from typing import Literal

from workflows.policy.durations import format_duration, parse_duration
from workflows.policy.matchers import is_classic_label_name, parse_matchers
from workflows.policy.routing import DEFAULT_GROUP_INTERVAL, DEFAULT_REPEAT_INTERVAL, RouteSpec

__all__ = ["RouteIssue", "route_issues", "route_receivers", "legacy_key_issues"]

RouteIssue = tuple[str, str, Literal["error", "warning"]]
"""(key path, message, level)."""


def legacy_key_issues(mapping: Mapping[str, str], path: str) -> list[RouteIssue]:
    """Legacy ``match``-style keys must be classic label names."""
    return [
        (f"{path}.{key}", f"invalid label name '{key}'", "error") for key in mapping if not is_classic_label_name(key)
    ]


def route_issues(
    route: RouteSpec,
    *,
    receivers: Collection[str],
    intervals: Collection[str],
    escalations: Collection[str],
    path: str = "route",
) -> list[RouteIssue]:
    """Every problem in a route tree, depth first, in the order ``amtool``-style checks find them.

    Args:
        route: the root route.
        receivers: the receiver names that exist.
        intervals: the time interval names that exist.
        escalations: the escalation policy names that exist.
        path: the root's key path.

    Returns:
        Errors and warnings, each with its key path.
    """
    check = _RouteCheck(receivers, intervals, escalations)
    check.walk(route, path, True, DEFAULT_GROUP_INTERVAL, DEFAULT_REPEAT_INTERVAL)
    return check.found


def route_receivers(route: RouteSpec) -> set[str]:
    """The receivers the routes of a tree name themselves (not inherited)."""
    found = {route.receiver} if route.receiver else set()
    for child in route.routes:
        found |= route_receivers(child)
    return found


def _has_matchers(route: RouteSpec) -> bool:
    if route.match or route.match_re:
        return True
    return any(parse_matchers(text, allow_empty=True) for text in route.matchers)


class _RouteCheck:
    def __init__(self, receivers: Collection[str], intervals: Collection[str], escalations: Collection[str]):
        self.receivers = receivers
        self.intervals = intervals
        self.escalations = escalations
        self.found: list[RouteIssue] = []

    def error(self, path: str, message: str) -> None:
        self.found.append((path, message, "error"))

    def warn(self, path: str, message: str) -> None:
        self.found.append((path, message, "warning"))

    def walk(self, route: RouteSpec, path: str, root: bool, group_interval: timedelta, repeat: timedelta) -> None:
        """Check ``route`` and, depth first, its children (timers as inherited from the parent)."""
        if root:
            self._root(route, path)
        self._references(route, path)
        group_interval, repeat = self._timers(route, path, group_interval, repeat)
        catch_all: str | None = None
        for k, child in enumerate(route.routes):
            child_path = f"{path}.routes[{k}]"
            if catch_all is not None:
                self.warn(
                    child_path,
                    f"unreachable: {catch_all} has no matchers and no 'continue', "
                    "so it catches every alert before this route",
                )
            elif not child.continue_ and not _has_matchers(child):
                catch_all = child_path
            self.walk(child, child_path, False, group_interval, repeat)

    def _root(self, route: RouteSpec, path: str) -> None:
        if not route.receiver:
            self.error(f"{path}.receiver", "the root route needs a receiver")
        if route.matchers or route.match or route.match_re:
            self.error(f"{path}.matchers", "the root route must not have matchers")
        if route.continue_:
            self.error(f"{path}.continue", "the root route cannot have continue")
        if route.mute_time_intervals:
            self.error(f"{path}.mute_time_intervals", "the root route must not have any mute time intervals")
        if route.active_time_intervals:
            self.error(f"{path}.active_time_intervals", "the root route must not have any active time intervals")

    def _references(self, route: RouteSpec, path: str) -> None:
        if route.receiver and route.receiver not in self.receivers:
            self.error(f"{path}.receiver", f"unknown receiver '{route.receiver}'")
        self.found += legacy_key_issues(route.match, f"{path}.match")
        self.found += legacy_key_issues(route.match_re, f"{path}.match_re")
        if route.escalation is not None and route.escalation not in self.escalations:
            self.error(f"{path}.escalation", f"unknown escalation policy '{route.escalation}'")
        for key, names in (
            ("mute_time_intervals", route.mute_time_intervals),
            ("active_time_intervals", route.active_time_intervals),
        ):
            for j, name in enumerate(names):
                if name not in self.intervals:
                    self.error(f"{path}.{key}[{j}]", f"unknown time interval '{name}'")

    def _timers(
        self, route: RouteSpec, path: str, group_interval: timedelta, repeat: timedelta
    ) -> tuple[timedelta, timedelta]:
        """Warn about a repeat interval that is not what it says; return this route's effective timers."""
        if route.group_interval is not None:
            group_interval = parse_duration(route.group_interval)
        if route.repeat_interval is not None:
            repeat = parse_duration(route.repeat_interval)
        if route.group_interval is None and route.repeat_interval is None:
            return group_interval, repeat
        where = f"{path}.repeat_interval" if route.repeat_interval is not None else f"{path}.group_interval"
        if repeat < group_interval:
            self.warn(
                where,
                f"repeat_interval ({format_duration(repeat)}) is less than group_interval "
                f"({format_duration(group_interval)}): notifications will not repeat until "
                f"the next group_interval",
            )
        elif group_interval > timedelta(0) and repeat % group_interval:
            rounded = group_interval * -(-repeat // group_interval)
            self.warn(
                where,
                f"repeat_interval ({format_duration(repeat)}) is not a multiple of "
                f"group_interval ({format_duration(group_interval)}): it is rounded up to "
                f"{format_duration(rounded)}",
            )
        return group_interval, repeat
