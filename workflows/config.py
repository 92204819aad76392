"""The ``tocsin.yaml`` schema, as pydantic models.

Pure: no file or environment access here (that is ``operations.config``).
Workflows receive a :class:`Config` *snapshot* from an activity, with channel
settings stripped to their type, so neither secrets nor a config edit ever
reach workflow history except through that recorded activity result.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

from workflows.audit import AuditConfig
from workflows.environments import EnvironmentConfig, environment_issues
from workflows.pipeline.settings import PipelineReportConfig, PipelinesConfig, pipelines_issues
from workflows.policy import timeintervals as _ti
from workflows.policy.durations import check_duration, parse_duration
from workflows.policy.escalation import EscalationLevel, EscalationPolicy
from workflows.policy.matchers import MatcherError, compile_go_regex, parse_matchers
from workflows.policy.route_checks import legacy_key_issues, route_issues, route_receivers
from workflows.policy.routing import RouteNode, build_tree
from workflows.users import AuthConfig, OidcIdentity, User, user_issues

__all__ = [
    "CHANNEL_TYPES",
    "ChannelConfig",
    "Receiver",
    "Route",
    "EscalationLevel",
    "EscalationPolicy",
    "PipelinesConfig",
    "PipelineReportConfig",
    "Config",
    "ConfigIssue",
    "default_config",
    "validate_references",
]

CHANNEL_TYPES = (
    "slack",
    "discord",
    "teams",
    "email",
    "pagerduty",
    "sms",
    "github",
    "jira",
    "webhook",
    "console",
)

ChannelType = Literal["slack", "discord", "teams", "email", "pagerduty", "sms", "github", "jira", "webhook", "console"]


_duration = check_duration


def _matcher_text(value: str) -> str:
    """One ``matchers`` entry: Alertmanager's matcher syntax (may hold several, or none)."""
    try:
        parse_matchers(value, allow_empty=True)
    except MatcherError as exc:
        raise ValueError(str(exc)) from None
    return value


def _go_regex(value: str) -> str:
    """A legacy ``match_re`` value: a Go (RE2) regex, anchored as Alertmanager anchors it."""
    try:
        compile_go_regex("^(?:" + value + ")$")
    except MatcherError as exc:
        raise ValueError(str(exc).replace(f" in `^(?:{value})$`", f" in {value!r}")) from None
    return value


def _checked(parse: Callable[[Any], Any]) -> Callable[[str], str]:
    def check(value: str) -> str:
        parse(value)
        return value

    return check


MatcherText = Annotated[str, AfterValidator(_matcher_text)]
GoRegex = Annotated[str, AfterValidator(_go_regex)]


def _nonzero(field: str) -> Callable[[Any, Any], Any]:
    def check(cls: Any, value: Any) -> Any:
        value = _duration(value)
        if value is not None and parse_duration(value) == timedelta(0):
            raise ValueError(f"{field} cannot be zero")
        return value

    return check


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=False)


class ChannelConfig(BaseModel):
    """One named channel instance. Keys beyond ``type`` depend on the type."""

    model_config = ConfigDict(extra="allow")

    type: ChannelType
    """Which integration delivers for this channel."""

    def settings(self) -> dict[str, Any]:
        """The type-specific keys (may hold ``${ENV}`` references)."""
        return dict(self.model_extra or {})


class Receiver(_Strict):
    """A named set of channels plus optional backup channels (failover)."""

    name: str
    channels: list[str] = Field(default_factory=list)
    """Primary channels; all are notified."""
    backup: list[str] = Field(default_factory=list)
    """Channels that take over when a primary has not delivered in time."""
    failover_after: str = "20s"
    """How long a primary may try before the backup channels are used."""
    give_up_after: str = "1h"
    """How long a send may keep retrying before the message is dead-lettered (see ``Config.dead_letter``)."""
    digest: bool = False
    """Hold notifications for this receiver and send them as one digest on a schedule."""
    digest_at: str = "08:00"
    """Local time of day (HH:MM) the digest is sent, by a Temporal Schedule."""
    digest_timezone: str = "UTC"
    """IANA zone of ``digest_at``, e.g. ``Asia/Seoul``."""

    _v_failover = field_validator("failover_after")(lambda cls, v: _duration(v))
    _v_give_up = field_validator("give_up_after")(_nonzero("give_up_after"))

    @model_validator(mode="after")
    def _v_give_up_after_failover(self) -> Receiver:
        if self.backup and parse_duration(self.give_up_after) <= parse_duration(self.failover_after):
            raise ValueError(
                f"give_up_after ({self.give_up_after}) must be longer than failover_after ({self.failover_after})"
            )
        return self


class Route(_Strict):
    """A node of the Alertmanager route tree, plus Tocsin's ``escalation`` key."""

    receiver: str | None = None
    group_by: list[str] | None = None
    group_wait: str | None = None
    group_interval: str | None = None
    repeat_interval: str | None = None
    matchers: list[MatcherText] = Field(default_factory=list)
    match: dict[str, str] = Field(default_factory=dict)
    """Legacy equality matchers (Alertmanager ``match``)."""
    match_re: dict[str, GoRegex] = Field(default_factory=dict)
    """Legacy regex matchers (Alertmanager ``match_re``)."""
    continue_: bool = Field(default=False, alias="continue")
    routes: list[Route] = Field(default_factory=list)
    mute_time_intervals: list[str] = Field(default_factory=list)
    active_time_intervals: list[str] = Field(default_factory=list)
    escalation: str | None = None
    """Name of an ``escalation_policies`` entry (Tocsin's addition)."""

    _v_wait = field_validator("group_wait")(lambda cls, v: _duration(v))
    _v_group_interval = field_validator("group_interval")(_nonzero("group_interval"))
    _v_repeat_interval = field_validator("repeat_interval")(_nonzero("repeat_interval"))

    @field_validator("group_by")
    @classmethod
    def _v_group_by(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return value
        seen: set[str] = set()
        for name in value:
            if name == "":
                raise ValueError("invalid label name '' in group_by list")
            if name in seen:
                raise ValueError(f"duplicated label '{name}' in group_by")
            seen.add(name)
        if "..." in seen and len(seen) > 1:
            raise ValueError("cannot have wildcard group_by ('...') and other labels at the same time")
        return value


class TimeRange(_Strict):
    """``start_time``/``end_time`` as ``HH:MM``; the end is exclusive and may be ``24:00``."""

    start_time: Annotated[str, BeforeValidator(_ti.yaml_time), AfterValidator(_checked(_ti.parse_time))]
    end_time: Annotated[str, BeforeValidator(_ti.yaml_time), AfterValidator(_checked(_ti.parse_time))]

    @model_validator(mode="after")
    def _v_order(self) -> TimeRange:
        if _ti.parse_time(self.start_time) >= _ti.parse_time(self.end_time):
            raise ValueError(f"start_time {self.start_time} must be before end_time {self.end_time}")
        return self


def _range_item(parse: Callable[[str], Any]) -> Any:
    return Annotated[str, BeforeValidator(_ti.yaml_scalar), AfterValidator(_checked(parse))]


class TimeSpec(_Strict):
    """One Alertmanager time interval spec; every field given must match."""

    times: list[TimeRange] = Field(default_factory=list)
    weekdays: list[_range_item(_ti.parse_weekday_range)] = Field(default_factory=list)  # type: ignore[valid-type]
    days_of_month: list[_range_item(_ti.parse_day_of_month_range)] = Field(default_factory=list)  # type: ignore[valid-type]
    months: list[_range_item(_ti.parse_month_range)] = Field(default_factory=list)  # type: ignore[valid-type]
    years: list[_range_item(_ti.parse_year_range)] = Field(default_factory=list)  # type: ignore[valid-type]
    location: str | None = None
    """IANA time zone (default UTC)."""

    @field_validator("location")
    @classmethod
    def _v_location(cls, value: str | None) -> str | None:
        _ti.load_location(value)
        return value


class TimeInterval(_Strict):
    """Alertmanager ``time_intervals`` entry."""

    name: str
    time_intervals: list[TimeSpec] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _v_name(cls, value: str) -> str:
        if not value:
            raise ValueError("missing name in time interval")
        return value


class InhibitRule(_Strict):
    """Alertmanager ``inhibit_rules`` entry."""

    name: str | None = None
    """Optional, for humans (Alertmanager ≥ 0.29)."""
    source_matchers: list[MatcherText] = Field(default_factory=list)
    target_matchers: list[MatcherText] = Field(default_factory=list)
    source_match: dict[str, str] = Field(default_factory=dict)
    source_match_re: dict[str, GoRegex] = Field(default_factory=dict)
    target_match: dict[str, str] = Field(default_factory=dict)
    target_match_re: dict[str, GoRegex] = Field(default_factory=dict)
    equal: list[str] = Field(default_factory=list)

    @field_validator("equal")
    @classmethod
    def _v_equal(cls, value: list[str]) -> list[str]:
        for name in value:
            if not name:
                raise ValueError("invalid label name '' in equal list")
        return value


class _RouteTreeCache:
    """What :meth:`Config.route_tree` built, and from which ``route`` object.

    Equal to any other cache, so building the tree never changes whether two
    configs compare equal (pydantic compares private attributes in ``==``);
    a copied cache starts empty, so a copy builds its own tree.
    """

    __slots__ = ("route", "tree")

    def __init__(self, route: Route | None = None, tree: RouteNode | None = None):
        self.route = route
        self.tree = tree

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _RouteTreeCache)

    __hash__ = None  # type: ignore[assignment]

    def __copy__(self) -> _RouteTreeCache:
        return _RouteTreeCache()

    def __deepcopy__(self, memo: dict[int, Any]) -> _RouteTreeCache:
        return _RouteTreeCache()


class Config(_Strict):
    """The whole ``tocsin.yaml``."""

    channels: dict[str, ChannelConfig] = Field(default_factory=dict)
    receivers: list[Receiver] = Field(default_factory=list)
    route: Route = Field(default_factory=lambda: Route(receiver="console"))
    inhibit_rules: list[InhibitRule] = Field(default_factory=list)
    time_intervals: list[TimeInterval] = Field(default_factory=list)
    escalation_policies: dict[str, EscalationPolicy] = Field(default_factory=dict)
    environments: dict[str, EnvironmentConfig] = Field(default_factory=dict)
    """Per environment: approvers, approvals, freeze windows, canary, hooks (see ``workflows.environments``)."""
    pipelines: PipelinesConfig = Field(default_factory=PipelinesConfig)
    redact_patterns: list[str] = Field(default_factory=list)
    """Extra regular expressions whose matches are replaced by ``[REDACTED]``."""
    rollback_triggers: list[str] = Field(default_factory=list)
    """Alert names that, firing for service S in environment E, roll back S/E's deployment."""
    dead_letter: str | None = None
    """Receiver told about notifications that could not be delivered (default: the console)."""
    users: list[User] = Field(default_factory=list)
    """People, their handles, roles and API token hashes (``workflows.users``)."""
    oidc: list[OidcIdentity] = Field(default_factory=list)
    """CI identities proved by OIDC ID tokens."""
    auth: AuthConfig = Field(default_factory=AuthConfig)
    audit: AuditConfig = Field(default_factory=AuditConfig)

    _route_tree: _RouteTreeCache = PrivateAttr(default_factory=_RouteTreeCache)

    @model_validator(mode="before")
    @classmethod
    def _none_is_empty(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None}
        return data

    @field_validator("redact_patterns")
    @classmethod
    def _v_redact_patterns(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {pattern!r} ({exc})") from None
        return value

    def receiver(self, name: str) -> Receiver | None:
        """The receiver called ``name``, if any."""
        for rcv in self.receivers:
            if rcv.name == name:
                return rcv
        return None

    def route_tree(self) -> RouteNode:
        """The route tree with inheritance resolved (:func:`workflows.policy.routing.build_tree`).

        Built on the first call and kept for this instance; built again only
        when ``route`` is replaced by another object. Not part of the
        serialised config. Do not mutate the returned tree.
        """
        cache = self._route_tree
        if cache.tree is not None and cache.route is self.route:
            return cache.tree
        tree = build_tree(self.route)
        self._route_tree = _RouteTreeCache(self.route, tree)
        return tree

    def snapshot(self) -> Config:
        """A copy safe for workflow history: channel settings reduced to their type."""
        copy = self.model_copy(deep=True)
        copy.channels = {name: ChannelConfig(type=ch.type) for name, ch in self.channels.items()}
        for user in copy.users:
            user.tokens = []  # no credential enters history, not even a hash
        return copy


class ConfigIssue(BaseModel):
    """A problem found in a config, named by its key path."""

    path: str
    message: str
    level: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def default_config() -> Config:
    """The built-in config: one ``console`` receiver that gets everything."""
    return Config(
        channels={"console": ChannelConfig(type="console")},
        receivers=[Receiver(name="console", channels=["console"])],
        route=Route(receiver="console", group_by=["alertname", "service"]),
    )


def validate_references(config: Config) -> list[ConfigIssue]:
    """Checks pydantic cannot do alone: names that must exist, tree-wide rules, warnings.

    Errors follow Alertmanager's ``config.Load`` rules (root route: a receiver,
    no matchers, no ``continue``, no time intervals; every receiver and time
    interval named must exist and be unique; legacy ``match`` keys must be
    classic label names). Warnings (``level="warning"``) flag routes that can
    never match (after a sibling without matchers or ``continue``, which
    catches every alert), receivers nothing uses, and a ``repeat_interval``
    shorter than or not a multiple of its ``group_interval``. The route tree's
    rules are :func:`workflows.policy.route_checks.route_issues`.

    Returns:
        Every issue found, each naming its key path.
    """
    issues: list[ConfigIssue] = []

    def error(path: str, message: str) -> None:
        issues.append(ConfigIssue(path=path, message=message))

    receivers: set[str] = set()
    for i, rcv in enumerate(config.receivers):
        if not rcv.name:
            error(f"receivers[{i}].name", "missing name in receiver")
        if rcv.name in receivers:
            error(f"receivers[{i}].name", f"duplicate receiver '{rcv.name}'")
        receivers.add(rcv.name)
        for key in ("channels", "backup"):
            for j, ch in enumerate(getattr(rcv, key)):
                if ch not in config.channels:
                    error(f"receivers[{i}].{key}[{j}]", f"unknown channel '{ch}'")

    intervals: set[str] = set()
    for i, ti in enumerate(config.time_intervals):
        if ti.name in intervals:
            error(f"time_intervals[{i}].name", f"duplicate time interval '{ti.name}'")
        intervals.add(ti.name)

    found = route_issues(
        config.route, receivers=receivers, intervals=intervals, escalations=config.escalation_policies.keys()
    )
    for i, rule in enumerate(config.inhibit_rules):
        for key in ("source_match", "source_match_re", "target_match", "target_match_re"):
            found += legacy_key_issues(getattr(rule, key), f"inhibit_rules[{i}].{key}")
    issues += [ConfigIssue(path=path, message=message, level=level) for path, message, level in found]

    used = route_receivers(config.route)
    for name, policy in config.escalation_policies.items():
        for j, level in enumerate(policy.levels):
            used.add(level.receiver)
            if level.receiver not in receivers:
                error(f"escalation_policies.{name}.levels[{j}].receiver", f"unknown receiver '{level.receiver}'")
        afters = [parse_duration(level.after) for level in policy.levels]
        if afters != sorted(afters):
            error(f"escalation_policies.{name}.levels", "levels must be in increasing 'after' order")

    for path, message in environment_issues(config.environments, receivers, intervals):
        error(path, message)
    approvers = {env: spec.approvers for env, spec in config.environments.items()}
    found = user_issues(config.users, config.oidc, approvers)
    issues += [ConfigIssue(path=path, message=message, level=level) for path, message, level in found]
    if config.dead_letter is not None:
        used.add(config.dead_letter)
        if config.dead_letter not in receivers:
            error("dead_letter", f"unknown receiver '{config.dead_letter}'")
    used |= {env.receiver for env in config.environments.values() if env.receiver}
    used |= {report.receiver for report in config.pipelines.reports}
    for path, message in pipelines_issues(config.pipelines, receivers, config.escalation_policies.keys()):
        error(path, message)
    for i, rcv in enumerate(config.receivers):
        if rcv.name and rcv.name not in used:
            issues.append(
                ConfigIssue(
                    path=f"receivers[{i}]",
                    level="warning",
                    message=f"receiver '{rcv.name}' is not used by any route, escalation policy or environment",
                )
            )
    return issues


def duration(value: str | None, default: timedelta) -> timedelta:
    """Parse an optional duration string, falling back to ``default``."""
    return default if value is None else parse_duration(value)
