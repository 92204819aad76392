"""The ``environments.<env>`` section of ``tocsin.yaml``, as pydantic models.

Pure: no I/O. A deployment reads its environment from the config snapshot it
loads through an activity, so a config edit never changes a running
deployment's replay.

Example::

    environments:
      prod:
        approvers: [alice, bob, carol]
        required_approvals: 1
        four_eyes: true
        approval_timeout: 4h
        reminder_every: 30m
        freeze: [market-hours]
        receiver: deploys
        risk_extra_approval_above: 6
        concurrency: wait
        canary:
          steps: [10, 50, 100]
          bake: 5m
          analysis:
            prometheus_url: http://prometheus:9090
            interval: 1m
            count: 3
            failure_limit: 0
            metrics:
              - name: error-rate
                query: sum(rate(http_requests_total{service="{service}",code=~"5.."}[1m]))
                max: 0.5
        hooks:
          deploy: {url: http://deployer/deploy}
          rollback: {url: http://deployer/rollback}
          health: [http://api/healthz]
          health_deadline: 2m
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from workflows.policy.durations import DurationError, parse_duration

__all__ = [
    "MetricCheck",
    "CanaryAnalysis",
    "CanaryConfig",
    "HookConfig",
    "HooksConfig",
    "EnvironmentConfig",
    "environment_of",
    "environment_issues",
    "render_query",
    "PRODUCTION_NAMES",
]

PRODUCTION_NAMES = ("prod", "production", "live", "prd")
"""Environment names treated as production when ``production`` is not set."""


def _duration(value: Any) -> str:
    try:
        parse_duration(value)
    except DurationError as exc:
        raise ValueError(str(exc)) from None
    return str(value)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def render_query(template: str, *, service: str, env: str, version: str) -> str:
    """Fill ``{service}``, ``{env}`` and ``{version}`` in a PromQL template.

    Only those three names are replaced; other braces (label matchers such as
    ``{code="500"}``) are left alone, so queries need no escaping.
    """
    values = {"service": service, "env": env, "version": version}
    out = template
    for key, value in values.items():
        out = out.replace("{" + key + "}", value)
    return out


class MetricCheck(_Strict):
    """One Prometheus instant query and the bound its value must respect."""

    name: str
    query: str
    """PromQL; ``{service}``, ``{env}`` and ``{version}`` are filled in."""
    max: float | None = None
    """The check fails when the value is above this."""
    min: float | None = None
    """The check fails when the value is below this."""

    @model_validator(mode="after")
    def _one_bound(self) -> MetricCheck:
        if self.max is None and self.min is None:
            raise ValueError(f"metric '{self.name}' needs max or min")
        return self


class CanaryAnalysis(_Strict):
    """Metric analysis after each canary step's bake time (Argo Rollouts semantics)."""

    prometheus_url: str
    metrics: list[MetricCheck] = Field(default_factory=list)
    interval: str = "1m"
    """Time between two measurements."""
    count: int = Field(default=3, ge=1)
    """Measurements per step."""
    failure_limit: int = Field(default=0, ge=0)
    """The analysis fails when more than this many measurements breach a bound."""

    _v_interval = field_validator("interval")(lambda cls, v: _duration(v))


class CanaryConfig(_Strict):
    """Traffic steps of a canary rollout."""

    steps: list[int] = Field(default_factory=lambda: [100])
    """Traffic weights in percent, increasing; a final 100 is added when missing."""
    bake: str = "0s"
    """How long each step runs before it is analysed."""
    analysis: CanaryAnalysis | None = None

    _v_bake = field_validator("bake")(lambda cls, v: _duration(v))

    @field_validator("steps")
    @classmethod
    def _v_steps(cls, value: list[int]) -> list[int]:
        if not value:
            raise ValueError("at least one step is needed")
        for weight in value:
            if not 0 < weight <= 100:
                raise ValueError(f"weights are percentages in 1..100, got {weight}")
        if value != sorted(set(value)):
            raise ValueError("weights must be strictly increasing")
        return value

    def weights(self) -> list[int]:
        """The steps, ending with 100."""
        return self.steps if self.steps[-1] == 100 else [*self.steps, 100]


class HookConfig(_Strict):
    """An HTTP endpoint Tocsin POSTs JSON to."""

    url: str
    """May reference ``${ENV}`` variables (resolved by the worker, never stored in history)."""
    headers: dict[str, str] = Field(default_factory=dict)
    """E.g. ``Authorization: Bearer ${DEPLOY_TOKEN}``."""
    timeout: str = "30s"
    """Per request."""
    deadline: str = "10m"
    """How long retries of a failing hook may go on."""

    _v_durations = field_validator("timeout", "deadline")(lambda cls, v: _duration(v))


class HooksConfig(_Strict):
    """Deploy, rollback and health-check endpoints."""

    deploy: HookConfig | None = None
    """POSTed ``{service, env, version, weight}`` at each canary step."""
    rollback: HookConfig | None = None
    """POSTed ``{service, env, version, reason, by}`` on rollback."""
    health: list[str] = Field(default_factory=list)
    """URLs that must answer 2xx (GET) after the rollout."""
    health_deadline: str = "5m"

    _v_deadline = field_validator("health_deadline")(lambda cls, v: _duration(v))


class EnvironmentConfig(_Strict):
    """Deployment policy of one environment."""

    approvers: list[str] = Field(default_factory=list)
    """Who may approve or reject; empty means anyone (four eyes still applies)."""
    required_approvals: int = Field(default=1, ge=0)
    four_eyes: bool = True
    """The deployer cannot approve their own deployment."""
    approval_timeout: str = "24h"
    reminder_every: str | None = "1h"
    freeze: list[str] = Field(default_factory=list)
    """Names of ``time_intervals`` during which deploys are blocked (``--emergency`` overrides)."""
    receiver: str | None = None
    """Where approval requests and progress go (default: the root route's receiver)."""
    risk_extra_approval_above: float | None = None
    """Above this risk score one more approval is required."""
    concurrency: Literal["wait", "refuse"] = "wait"
    """A second deployment of the same service here waits its turn, or is refused."""
    production: bool | None = None
    """Counts as production for the risk score (default: by name, e.g. ``prod``)."""
    canary: CanaryConfig = Field(default_factory=CanaryConfig)
    hooks: HooksConfig = Field(default_factory=HooksConfig)

    _v_timeout = field_validator("approval_timeout")(lambda cls, v: _duration(v))

    @field_validator("reminder_every")
    @classmethod
    def _v_reminder(cls, value: Any) -> str | None:
        return None if value is None else _duration(value)

    @model_validator(mode="after")
    def _v_approvals(self) -> EnvironmentConfig:
        pool = len(set(self.approvers))
        if self.approvers and self.required_approvals > pool:
            raise ValueError(f"required_approvals ({self.required_approvals}) exceeds the {pool} approvers listed")
        return self

    def is_production(self, name: str) -> bool:
        """Whether this environment counts as production."""
        return self.production if self.production is not None else name.lower() in PRODUCTION_NAMES

    def approval_window(self) -> timedelta:
        """``approval_timeout`` as a timedelta."""
        return parse_duration(self.approval_timeout)

    def reminder_interval(self) -> timedelta | None:
        """``reminder_every`` as a timedelta (None: no reminders)."""
        if self.reminder_every is None:
            return None
        delta = parse_duration(self.reminder_every)
        return delta if delta > timedelta(0) else None


def environment_of(environments: dict[str, Any], name: str) -> EnvironmentConfig:
    """The policy of environment ``name``: defaults when it is not configured.

    Accepts both raw mappings and :class:`EnvironmentConfig` values, so it works
    whether ``Config.environments`` holds dicts or models.
    """
    raw = environments.get(name)
    if raw is None:
        return EnvironmentConfig()
    if isinstance(raw, EnvironmentConfig):
        return raw
    return EnvironmentConfig.model_validate(raw)


def environment_issues(
    environments: dict[str, Any], receivers: set[str], time_intervals: set[str]
) -> list[tuple[str, str]]:
    """Cross-reference checks: receivers and freeze intervals must exist.

    Returns:
        ``(key path, message)`` pairs.
    """
    issues: list[tuple[str, str]] = []
    for name in environments:
        try:
            env = environment_of(environments, name)
        except ValueError as exc:
            issues.append((f"environments.{name}", str(exc)))
            continue
        if env.receiver is not None and env.receiver not in receivers:
            issues.append((f"environments.{name}.receiver", f"unknown receiver '{env.receiver}'"))
        for j, interval in enumerate(env.freeze):
            if interval not in time_intervals:
                issues.append((f"environments.{name}.freeze[{j}]", f"unknown time interval '{interval}'"))
    return issues
