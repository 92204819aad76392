"""The ``tocsin.yaml`` schema, as pydantic models.

Pure: no file or environment access here (that is ``activities.config``).
Workflows receive a :class:`Config` *snapshot* from an activity, with channel
settings stripped to their type, so neither secrets nor a config edit ever
reach workflow history except through that recorded activity result.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from workflows.policy.durations import DurationError, parse_duration
from workflows.policy.matchers import MatcherError, parse_matchers

__all__ = [
    "CHANNEL_TYPES",
    "ChannelConfig",
    "Receiver",
    "Route",
    "EscalationLevel",
    "EscalationPolicy",
    "PipelinesConfig",
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

ChannelType = Literal[
    "slack", "discord", "teams", "email", "pagerduty", "sms", "github", "jira", "webhook", "console"
]


def _duration(value: Any) -> str | None:
    if value is None:
        return None
    try:
        parse_duration(value)
    except DurationError as exc:
        raise ValueError(str(exc)) from None
    return str(value)


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
    digest: bool = False
    """Hold notifications for this receiver and send them as one digest on a schedule."""
    digest_at: str = "08:00"
    """Local time of day (HH:MM) the digest is sent, by a Temporal Schedule."""
    digest_timezone: str = "UTC"
    """IANA zone of ``digest_at``, e.g. ``Asia/Seoul``."""

    _v_failover = field_validator("failover_after")(lambda cls, v: _duration(v))


class Route(_Strict):
    """A node of the Alertmanager route tree, plus Tocsin's ``escalation`` key."""

    receiver: str | None = None
    group_by: list[str] | None = None
    group_wait: str | None = None
    group_interval: str | None = None
    repeat_interval: str | None = None
    matchers: list[str] = Field(default_factory=list)
    match: dict[str, str] = Field(default_factory=dict)
    """Legacy equality matchers (Alertmanager ``match``)."""
    match_re: dict[str, str] = Field(default_factory=dict)
    """Legacy regex matchers (Alertmanager ``match_re``)."""
    continue_: bool = Field(default=False, alias="continue")
    routes: list["Route"] = Field(default_factory=list)
    mute_time_intervals: list[str] = Field(default_factory=list)
    active_time_intervals: list[str] = Field(default_factory=list)
    escalation: str | None = None
    """Name of an ``escalation_policies`` entry (Tocsin's addition)."""

    _v_durations = field_validator("group_wait", "group_interval", "repeat_interval")(
        lambda cls, v: _duration(v)
    )

    @field_validator("matchers")
    @classmethod
    def _v_matchers(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                parse_matchers(item)
            except MatcherError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("match_re")
    @classmethod
    def _v_match_re(cls, value: dict[str, str]) -> dict[str, str]:
        import re

        for name, pattern in value.items():
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"bad regex for {name}: {exc}") from None
        return value


class TimeRange(_Strict):
    start_time: str
    end_time: str


class TimeSpec(_Strict):
    times: list[TimeRange] = Field(default_factory=list)
    weekdays: list[str] = Field(default_factory=list)
    days_of_month: list[str] = Field(default_factory=list)
    months: list[str] = Field(default_factory=list)
    years: list[str] = Field(default_factory=list)
    location: str | None = None


class TimeInterval(_Strict):
    """Alertmanager ``time_intervals`` entry."""

    name: str
    time_intervals: list[TimeSpec] = Field(default_factory=list)


class InhibitRule(_Strict):
    """Alertmanager ``inhibit_rules`` entry."""

    source_matchers: list[str] = Field(default_factory=list)
    target_matchers: list[str] = Field(default_factory=list)
    source_match: dict[str, str] = Field(default_factory=dict)
    source_match_re: dict[str, str] = Field(default_factory=dict)
    target_match: dict[str, str] = Field(default_factory=dict)
    target_match_re: dict[str, str] = Field(default_factory=dict)
    equal: list[str] = Field(default_factory=list)


class EscalationLevel(_Strict):
    """One rung of an escalation ladder."""

    after: str
    """Time since the incident was first notified."""
    receiver: str

    _v_after = field_validator("after")(lambda cls, v: _duration(v))


class EscalationPolicy(_Strict):
    """A named escalation ladder (L1..Ln)."""

    levels: list[EscalationLevel] = Field(default_factory=list)
    repeat: int = 0
    """How many times to repeat the last level after the ladder ends."""
    ack_timeout: str | None = None
    """Re-escalate an acknowledged incident still open after this long."""

    _v_ack = field_validator("ack_timeout")(lambda cls, v: _duration(v))


class PipelinesConfig(_Strict):
    """What CI pipeline events notify (failures and fixes always do)."""

    notify_success: bool = False
    """Notify every green build, not only the first after failures."""
    notify_started: bool = False
    """Notify when a build starts."""


class Config(_Strict):
    """The whole ``tocsin.yaml``."""

    channels: dict[str, ChannelConfig] = Field(default_factory=dict)
    receivers: list[Receiver] = Field(default_factory=list)
    route: Route = Field(default_factory=lambda: Route(receiver="console"))
    inhibit_rules: list[InhibitRule] = Field(default_factory=list)
    time_intervals: list[TimeInterval] = Field(default_factory=list)
    escalation_policies: dict[str, EscalationPolicy] = Field(default_factory=dict)
    environments: dict[str, dict[str, Any]] = Field(default_factory=dict)
    pipelines: PipelinesConfig = Field(default_factory=PipelinesConfig)
    redact_patterns: list[str] = Field(default_factory=list)
    """Extra regular expressions whose matches are replaced by ``[REDACTED]``."""
    rollback_triggers: list[str] = Field(default_factory=list)
    """Alert names that, firing for service S in environment E, roll back S/E's deployment."""

    @model_validator(mode="before")
    @classmethod
    def _none_is_empty(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None}
        return data

    def receiver(self, name: str) -> Receiver | None:
        """The receiver called ``name``, if any."""
        for rcv in self.receivers:
            if rcv.name == name:
                return rcv
        return None

    def snapshot(self) -> "Config":
        """A copy safe for workflow history: channel settings reduced to their type."""
        copy = self.model_copy(deep=True)
        copy.channels = {name: ChannelConfig(type=ch.type) for name, ch in self.channels.items()}
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
    """Cross-reference checks pydantic cannot do: names that must exist.

    Returns:
        Every issue found, each naming its key path.
    """
    issues: list[ConfigIssue] = []
    seen: set[str] = set()
    for i, rcv in enumerate(config.receivers):
        if rcv.name in seen:
            issues.append(ConfigIssue(path=f"receivers[{i}].name", message=f"duplicate receiver '{rcv.name}'"))
        seen.add(rcv.name)
        for key in ("channels", "backup"):
            for j, ch in enumerate(getattr(rcv, key)):
                if ch not in config.channels:
                    issues.append(
                        ConfigIssue(path=f"receivers[{i}].{key}[{j}]", message=f"unknown channel '{ch}'")
                    )
    intervals = {ti.name for ti in config.time_intervals}

    def walk(route: Route, path: str, root: bool) -> None:
        if root and route.receiver is None:
            issues.append(ConfigIssue(path=f"{path}.receiver", message="the root route needs a receiver"))
        if root and (route.matchers or route.match or route.match_re):
            issues.append(ConfigIssue(path=f"{path}.matchers", message="the root route must not have matchers"))
        if route.receiver is not None and route.receiver not in seen:
            issues.append(ConfigIssue(path=f"{path}.receiver", message=f"unknown receiver '{route.receiver}'"))
        if route.escalation is not None and route.escalation not in config.escalation_policies:
            issues.append(
                ConfigIssue(path=f"{path}.escalation", message=f"unknown escalation policy '{route.escalation}'")
            )
        for key in ("mute_time_intervals", "active_time_intervals"):
            for j, name in enumerate(getattr(route, key)):
                if name not in intervals:
                    issues.append(ConfigIssue(path=f"{path}.{key}[{j}]", message=f"unknown time interval '{name}'"))
        for k, child in enumerate(route.routes):
            walk(child, f"{path}.routes[{k}]", False)

    walk(config.route, "route", True)
    for name, policy in config.escalation_policies.items():
        for j, level in enumerate(policy.levels):
            if level.receiver not in seen:
                issues.append(
                    ConfigIssue(
                        path=f"escalation_policies.{name}.levels[{j}].receiver",
                        message=f"unknown receiver '{level.receiver}'",
                    )
                )
        afters = [parse_duration(level.after) for level in policy.levels]
        if afters != sorted(afters):
            issues.append(
                ConfigIssue(path=f"escalation_policies.{name}.levels", message="levels must be in increasing 'after' order")
            )
    return issues


def duration(value: str | None, default: timedelta) -> timedelta:
    """Parse an optional duration string, falling back to ``default``."""
    return default if value is None else parse_duration(value)
