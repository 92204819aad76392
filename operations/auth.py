"""Identity and authorization, decided here once for every door (CLI, HTTP API, Slack, PagerDuty).

**Authentication** turns a credential into an :class:`~workflows.identity.Actor`:

* an API token (``users[].tokens``: only its SHA-256 is configured) — compared in constant time
  against every configured hash, refused after its ``expires`` day; the actor's ``credential``
  is the token's id, never the token;
* an OIDC ID token — see :mod:`operations.oidc` (signature against the issuer's JWKS, ``iss``,
  ``aud``, ``exp``, ``nbf``, the entry's claims);
* the direct-mode CLI's typed ``--by`` — an *unverified* actor.

**Authorization** (:func:`authorize`): each operation names the role it needs. A verified actor
holds its user's (or OIDC entry's) roles, plus ``approver:<env>`` where ``environments.<env>.
approvers`` lists its name or one of its groups; ``admin`` holds every role; ``*`` as the
environment matches every one. An unverified actor may act only where ``auth.allow_unverified``
is true (by default: no ``users`` and no ``oidc`` configured) and never approves in an
environment marked ``production: true``. Every refusal is logged on ``tocsin.audit`` with the
actor and the reason, and counted.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Iterable
from datetime import UTC, date, datetime

from prometheus_client import Counter

from operations.errors import Refused, Unauthenticated
from workflows.config import Config
from workflows.identity import Actor, Door

__all__ = [
    "Unauthenticated",
    "TOKEN_PREFIX",
    "new_token",
    "hash_token",
    "token_actor",
    "unverified_allowed",
    "roles_of",
    "has_role",
    "authorize",
    "check_claim",
]

TOKEN_PREFIX = "tocsin_"
"""API tokens start with it (so a secret scanner can spot a leaked one)."""

log = logging.getLogger("tocsin.audit")

REFUSALS = Counter("tocsin_refusals", "Actions refused by authorization", ["reason"])


def new_token() -> str:
    """A new random API token (256 bits), printed once by ``tocsin token create``."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """The SHA-256 (hex) configured for ``token`` in ``users[].tokens``."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def token_actor(config: Config, token: str, via: Door, today: date | None = None) -> Actor:
    """The user an API token belongs to.

    Every configured hash is compared (in constant time) so the time taken does not tell which
    users exist. Raises:
        Unauthenticated: no such token, or it expired.
    """
    digest = hash_token(token)
    found = None
    for user in config.users:
        for entry in user.tokens:
            if hmac.compare_digest(entry.sha256, digest) and found is None:
                found = (user, entry)
    if found is None:
        raise Unauthenticated("unknown API token")
    user, entry = found
    if entry.expires is not None and (today or datetime.now(UTC).date()) > entry.expires:
        raise Unauthenticated(f"API token '{entry.id}' of {user.name} expired on {entry.expires.isoformat()}")
    return Actor(name=user.name, verified=True, method="token", credential=entry.id, via=via)


def unverified_allowed(config: Config) -> bool:
    """Whether unverified actors may act (``auth.allow_unverified``, defaulting to "no identities configured")."""
    if config.auth.allow_unverified is not None:
        return config.auth.allow_unverified
    return not config.users and not config.oidc


def _groups(config: Config, name: str) -> set[str]:
    return {g for user in config.users if user.name == name for g in user.groups}


def roles_of(config: Config, actor: Actor) -> set[str]:
    """The roles a verified actor holds (none for an unverified one)."""
    if not actor.verified:
        return set()
    if actor.method == "system":
        return {"admin"}
    roles: set[str] = set()
    if actor.method == "oidc":
        roles.update(r for entry in config.oidc if entry.as_ == actor.name for r in entry.roles)
    else:
        roles.update(r for user in config.users if user.name == actor.name for r in user.roles)
    names = {actor.name} | _groups(config, actor.name)
    roles.update(f"approver:{env}" for env, spec in config.environments.items() if names & set(spec.approvers))
    return roles


def _grants(roles: Iterable[str], role: str) -> bool:
    kind, _, env = role.partition(":")
    for held in roles:
        if held == "admin" or held == role:
            return True
        held_kind, _, held_env = held.partition(":")
        if env and held_kind == kind and held_env == "*":
            return True
    return False


def has_role(config: Config, actor: Actor, role: str) -> bool:
    """Whether a verified actor holds ``role`` (``responder``, ``approver:prod``…)."""
    return _grants(roles_of(config, actor), role)


def _refuse(actor: Actor, role: str, reason: str, kind: str) -> Refused:
    REFUSALS.labels(kind).inc()
    how = f"{actor.method}:{actor.credential}" if actor.credential else actor.method
    log.warning("refused %s (%s, via %s) the role %s: %s", actor.name, how, actor.via, role, reason)
    return Refused(reason)


def authorize(config: Config, actor: Actor, role: str) -> None:
    """Allow ``actor`` to act with ``role`` (``builder``, ``approver:prod``…), or raise :class:`Refused`.

    The refusal's reason names the actor and the missing role; it is logged on ``tocsin.audit``.
    """
    kind, _, env = role.partition(":")
    if not actor.verified:
        spec = config.environments.get(env) if env else None
        if kind == "approver" and spec is not None and spec.production is True:
            raise _refuse(
                actor,
                role,
                f"{actor.name} is not verified: approvals in {env} (production) need a verified identity "
                "(an API token or OIDC through TOCSIN_URL, or Slack)",
                "unverified-production",
            )
        if not unverified_allowed(config):
            raise _refuse(
                actor,
                role,
                f"{actor.name} is not verified and auth.allow_unverified is false: act through "
                "TOCSIN_URL with an API token or OIDC",
                "unverified",
            )
        return
    if not has_role(config, actor, role):
        raise _refuse(actor, role, f"{actor.name} does not hold the role {role}", "role")


def check_claim(actor: Actor, by: str | None) -> None:
    """A ``--by`` given with a credential must name the credential's identity."""
    if by is not None and by.strip() and actor.verified and by.strip() != actor.name:
        raise _refuse(actor, "--by", f"--by {by.strip()!r} is not the credential's identity ({actor.name})", "claim")
