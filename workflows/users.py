"""Who may act: ``users``, ``oidc`` identities and ``auth`` in ``tocsin.yaml`` (a contract: pure pydantic).

A user names a person and their handles on each door (Slack user id, GitHub login, email),
the roles they hold and their API tokens, stored as SHA-256 hashes only (``tocsin token
create`` prints a token once, with its line for this file). An ``oidc`` entry names a CI
identity proved by an OIDC ID token whose issuer, audience and claims all match.

Roles: ``builder`` (builds, notify), ``responder`` (alert, ack, resolve, escalate, snooze),
``silencer``, ``deployer:<env>``, ``approver:<env>`` (also granted by being listed in
``environments.<env>.approvers``, by name or by group), ``admin`` (everything); ``*`` as the
environment matches every one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["ApiToken", "User", "OidcIdentity", "AuthConfig", "ROLE_NAMES", "ENV_ROLES", "check_role", "user_issues"]

ROLE_NAMES = ("builder", "responder", "silencer", "admin")
"""Roles that take no environment."""
ENV_ROLES = ("deployer", "approver")
"""Roles that name an environment (``deployer:prod``, ``approver:*``)."""

_STRICT = ConfigDict(extra="forbid", populate_by_name=True)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def check_role(role: str) -> str:
    """``role`` when it is a known role (``deployer:<env>``, ``approver:*``…), else ValueError."""
    kind, sep, env = role.partition(":")
    if kind in ROLE_NAMES and not sep:
        return role
    if kind in ENV_ROLES and sep and env.strip():
        return role
    known = ", ".join([*ROLE_NAMES, *(f"{r}:<env>" for r in ENV_ROLES)])
    raise ValueError(f"unknown role {role!r} (known: {known}; '*' as <env> matches every environment)")


class ApiToken(BaseModel):
    """One API token of a user: its id (recorded with each action) and the SHA-256 of the secret."""

    model_config = _STRICT

    id: str = Field(min_length=1, max_length=64)
    sha256: str
    expires: date | None = None
    """The last day the token is accepted (UTC)."""

    @field_validator("sha256")
    @classmethod
    def _v_sha256(cls, value: str) -> str:
        if not _SHA256.match(value.lower()):
            raise ValueError("must be 64 hex digits (the token's SHA-256; `tocsin token create` prints it)")
        return value.lower()


class User(BaseModel):
    """A person who acts on Tocsin, and their verified handles."""

    model_config = _STRICT

    name: str = Field(min_length=1)
    slack: str | None = None
    """Slack user id (``U012ABCDEF``): who pressed a button or typed a slash command."""
    github: str | None = None
    email: str | None = None
    groups: list[str] = Field(default_factory=list)
    """Groups the user belongs to (``environments.<env>.approvers`` may name a group)."""
    roles: list[str] = Field(default_factory=list)
    tokens: list[ApiToken] = Field(default_factory=list)

    _v_roles = field_validator("roles")(lambda cls, v: [check_role(r) for r in v])


class OidcIdentity(BaseModel):
    """A CI identity proved by an OIDC ID token (GitHub Actions and the like)."""

    model_config = _STRICT

    issuer: str = Field(min_length=1)
    audience: str = Field(min_length=1)
    jwks_url: str = Field(min_length=1)
    claims: dict[str, str] = Field(default_factory=dict)
    """Claims that must all match (``fnmatch`` globs: ``refs/heads/*``)."""
    as_: str = Field(alias="as", min_length=1)
    """The identity's name, as actions and the audit show it."""
    roles: list[str] = Field(default_factory=list)

    _v_roles = field_validator("roles")(lambda cls, v: [check_role(r) for r in v])


class AuthConfig(BaseModel):
    """How strict identity is."""

    model_config = _STRICT

    allow_unverified: bool | None = None
    """Whether an actor no credential proved (the direct-mode CLI's ``--by``) may act. Default: true
    when no ``users`` and no ``oidc`` are configured (the embedded default), else false. An
    unverified actor never approves in an environment marked ``production: true``."""


def user_issues(
    users: Sequence[User],
    oidc: Sequence[OidcIdentity],
    approvers: Mapping[str, Sequence[str]],
    today: date | None = None,
) -> list[tuple[str, str, Literal["error", "warning"]]]:
    """Checks of ``users``, ``oidc`` and the approvers they are named in (``tocsin config check``).

    Errors: duplicate user names, duplicate token ids within a user, one token hash configured
    twice (two users would share one secret), an ``oidc[].as`` that is also a user's name (two
    ways to be the same identity, with different roles). Warnings: expired tokens (refused at
    use), and approvers naming neither a user nor a group when users are configured.

    Args:
        users: ``users``.
        oidc: ``oidc``.
        approvers: ``environments.<env>.approvers`` per environment.
        today: the day tokens are checked against (default: today, UTC).

    Returns:
        (key path, message, level) per issue.
    """
    found: list[tuple[str, str, Literal["error", "warning"]]] = []
    day = today or datetime.now(UTC).date()
    names: dict[str, int] = {}
    hashes: dict[str, str] = {}
    for i, user in enumerate(users):
        if user.name in names:
            found.append(
                (f"users[{i}].name", f"duplicate user '{user.name}' (also users[{names[user.name]}])", "error")
            )
        names.setdefault(user.name, i)
        ids: set[str] = set()
        for j, token in enumerate(user.tokens):
            where = f"users[{i}].tokens[{j}]"
            if token.id in ids:
                found.append((f"{where}.id", f"duplicate token id '{token.id}' for {user.name}", "error"))
            ids.add(token.id)
            if token.sha256 in hashes:
                found.append((f"{where}.sha256", f"the same token hash as {hashes[token.sha256]}", "error"))
            hashes.setdefault(token.sha256, where)
            if token.expires is not None and token.expires < day:
                found.append(
                    (f"{where}.expires", f"token '{token.id}' expired on {token.expires.isoformat()}", "warning")
                )
    for i, entry in enumerate(oidc):
        if entry.as_ in names:
            found.append((f"oidc[{i}].as", f"'{entry.as_}' is also a user's name (users[{names[entry.as_]}])", "error"))
    if users:
        known = set(names) | {g for user in users for g in user.groups} | {entry.as_ for entry in oidc}
        for env, listed in approvers.items():
            for j, name in enumerate(listed):
                if name not in known:
                    found.append(
                        (f"environments.{env}.approvers[{j}]", f"'{name}' is neither a user nor a group", "warning")
                    )
    return found
