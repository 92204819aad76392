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
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime

from prometheus_client import Counter

from operations.errors import Refused, Unauthenticated
from workflows.config import Config
from workflows.identity import Actor, Door
from workflows.policy.roles import grants, listed
from workflows.users import User

__all__ = [
    "Unauthenticated",
    "TOKEN_PREFIX",
    "new_token",
    "hash_token",
    "token_actor",
    "unverified_allowed",
    "identity_notice",
    "roles_of",
    "has_role",
    "authorize",
    "check_claim",
    "refuse",
    "Refusal",
    "recent_refusals",
    "set_refusal_sink",
    "refused_by_state",
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


def identity_notice(config: Config) -> str | None:
    """What a process should say once at start when unverified actors may act (None: they may not)."""
    if not unverified_allowed(config):
        return None
    if not config.users and not config.oidc and config.auth.allow_unverified is None:
        return (
            "no users configured: unverified local use is allowed (--by is recorded as typed, unverified); "
            "configure users and tokens (`tocsin token create`) to require verified identities"
        )
    return "auth.allow_unverified is true: actors no credential proved may act (never approving in production)"


def _user(config: Config, actor: Actor) -> User | None:
    """The configured user a verified actor is: by Slack user id for a Slack actor, else by name."""
    if actor.method == "slack" and actor.credential:
        found = next((u for u in config.users if u.slack and u.slack == actor.credential), None)
        if found is not None:
            return found
    return next((u for u in config.users if u.name == actor.name), None)


def roles_of(config: Config, actor: Actor) -> set[str]:
    """The roles a verified actor holds (none for an unverified one).

    Tocsin itself holds ``admin``; a PagerDuty actor (a signed PagerDuty webhook) holds
    ``responder`` (PagerDuty decided who may acknowledge), plus its user's roles when its name is a
    user's; a Slack actor holds the roles of the user whose ``slack`` id is its credential; an OIDC
    actor those of its ``oidc`` entry; a token actor those of its user. Being listed (by name or
    group) in ``environments.<env>.approvers`` adds ``approver:<env>``.
    """
    if not actor.verified:
        return set()
    if actor.method == "system":
        return {"admin"}
    found: set[str] = set()
    names, groups = [actor.name], []
    if actor.method == "oidc":
        found.update(r for entry in config.oidc if entry.as_ == actor.name for r in entry.roles)
    else:
        user = _user(config, actor)
        if user is not None:
            found.update(user.roles)
            names, groups = list(dict.fromkeys([actor.name, user.name])), user.groups
    if actor.method == "pagerduty":
        found.add("responder")
    found.update(
        f"approver:{env}"
        for env, spec in config.environments.items()
        if any(listed(spec.approvers, name, groups) for name in names)
    )
    return found


def has_role(config: Config, actor: Actor, role: str) -> bool:
    """Whether a verified actor holds ``role`` (``responder``, ``approver:prod``…)."""
    return grants(roles_of(config, actor), role)


def _refuse(actor: Actor, role: str, reason: str, kind: str) -> Refused:
    REFUSALS.labels(kind).inc()
    how = f"{actor.method}:{actor.credential}" if actor.credential else actor.method
    log.warning("refused %s (%s, via %s) the role %s: %s", actor.name, how, actor.via, role, reason)
    refusal = Refusal(at=datetime.now(UTC), actor=actor, role=role, reason=reason, kind=kind)
    _RECENT.append(refusal)
    if _SINK is not None:
        try:
            _SINK(refusal)
        except Exception:  # the refusal stands whatever happens to its record
            log.exception("refusal of %s not handed to the audit journal", actor.name)
    return Refused(reason)


def refused_by_state(actor: Actor | None, by: str, what: str, reason: str) -> Refused:
    """A refusal by the workflow's state (an incident already resolved, a control that does not apply):
    recorded like an authorization refusal (logged, counted as ``state``, journaled by the door)."""
    return _refuse(actor or Actor(name=by or "?"), what, reason, "state")


def refuse(actor: Actor, role: str, reason: str, kind: str) -> Refused:
    """Record a refusal made at a door before any operation ran (an unmapped Slack user…): logged on
    ``tocsin.audit``, counted under ``kind`` and kept in :func:`recent_refusals`; returns the error to raise."""
    return _refuse(actor, role, reason, kind)


@dataclass(frozen=True)
class Refusal:
    """One refusal by :func:`authorize` (or :func:`check_claim`)."""

    at: datetime
    actor: Actor
    role: str
    reason: str
    kind: str
    """``role``, ``unverified``, ``unverified-production``, ``claim`` or ``unmapped`` (the counter's label)."""


RECENT_MAX = 1000
_RECENT: deque[Refusal] = deque(maxlen=RECENT_MAX)


_SINK: Callable[[Refusal], None] | None = None


def set_refusal_sink(sink: Callable[[Refusal], None] | None) -> None:
    """Hand every refusal this process makes from now on to ``sink`` too (the gateway's audit journal);
    None stops it. The sink must not block: it is called where the refusal is made."""
    global _SINK
    _SINK = sink


def recent_refusals() -> list[Refusal]:
    """The last :data:`RECENT_MAX` refusals made *in this process*, oldest first.

    Refusals never reach Temporal (nothing was started or signalled), so this is all the record
    there is besides the ``tocsin.audit`` log and the ``tocsin_refusals`` counter: the gateway's
    ``audit export`` includes the refusals it made since it started; the persistent audit journal
    will keep them for good.
    """
    return list(_RECENT)


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
