"""OIDC ID tokens as credentials: a CI job (GitHub Actions and the like) proves who it is.

The ``oidc:`` entries of the config name the identities::

    oidc:
      - issuer: https://token.actions.githubusercontent.com
        audience: tocsin
        jwks_url: https://token.actions.githubusercontent.com/.well-known/jwks
        claims: {repository: acme/payments, ref: refs/heads/main}   # all must match (globs allowed)
        as: ci-payments
        roles: [builder, deployer:staging]

:meth:`OidcVerifier.verify` reads the token's unverified ``iss`` only to pick the entries of that
issuer, then checks the signature against the issuer's JWKS (asymmetric algorithms only: never
``none``, never HMAC), then ``iss``, ``aud`` (the entry's audience), ``exp`` (required), ``nbf`` and
``iat`` with a leeway of :data:`LEEWAY` seconds, then every ``claims`` item of the entry
(:func:`fnmatch.fnmatchcase` globs on the claim's text: ``refs/heads/*``). Several entries may share
an issuer (one per repository): the first whose audience and claims all match wins; the issuer's
keys are fetched from the first of those entries' ``jwks_url``.

JWKS are cached per URL: refreshed after :data:`JWKS_TTL`, and refetched at once, at most every
:data:`REFETCH_INTERVAL` seconds, when a token names a key id the cache does not know (key
rotation). Every failure is :class:`~operations.errors.Unauthenticated` (HTTP 401) with a reason that
never contains the token.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt

from operations.errors import Unauthenticated
from workflows.config import Config
from workflows.identity import Actor, Door
from workflows.users import OidcIdentity

__all__ = [
    "ALLOWED_ALGORITHMS",
    "LEEWAY",
    "JWKS_TTL",
    "REFETCH_INTERVAL",
    "JwksCache",
    "JwksKey",
    "OidcVerifier",
    "looks_like_jwt",
    "claim_matches",
]

ALLOWED_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
"""Signature algorithms accepted (asymmetric only: ``none`` and ``HS*`` are refused)."""
LEEWAY = 60
"""Seconds of clock skew tolerated on ``exp``, ``nbf`` and ``iat``."""
JWKS_TTL = 3600.0
"""Seconds a fetched JWKS is used before it is fetched again."""
REFETCH_INTERVAL = 60.0
"""Least seconds between two fetches of one JWKS prompted by an unknown key id."""
FETCH_TIMEOUT = 10.0
"""Seconds a JWKS fetch may take."""
MAX_TOKEN_LENGTH = 16 * 1024
"""Longest ID token read (GitHub's are about 1-2 KiB)."""

_JWT = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")

log = logging.getLogger("tocsin.auth")


def looks_like_jwt(text: str) -> bool:
    """Whether ``text`` has a JWT's shape (three base64url segments), not an API token's."""
    return len(text) <= MAX_TOKEN_LENGTH and _JWT.match(text.strip()) is not None


def _shown(value: object, limit: int = 120) -> str:
    """An untrusted value for an error message: quoted and cut short."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def claim_matches(value: object, pattern: str) -> bool:
    """Whether a claim's value matches an entry's glob (strings, numbers and booleans as text)."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (str, int, float)):
        text = str(value)
    else:
        return False
    return fnmatch.fnmatchcase(text, pattern)


# ---------------------------------------------------------------------------------------- JWKS


@dataclass(frozen=True)
class JwksKey:
    """One public key of an issuer's JWKS."""

    key: jwt.PyJWK
    alg: str | None
    """The algorithm the JWKS pins the key to (its ``alg``), if it does."""


@dataclass
class _KeySet:
    keys: dict[str, JwksKey] = field(default_factory=dict)
    """Usable signing keys by key id (a key without ``kid`` is stored under ``""``)."""
    fetched: float = float("-inf")
    """When the keys were last fetched (the cache's clock)."""
    attempted: float = float("-inf")
    """When a fetch was last tried, successful or not (throttles unknown-kid refetches)."""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def _parse_jwks(url: str, data: object) -> dict[str, JwksKey]:
    """The usable signing keys of a JWKS document (unknown or unusable keys are skipped)."""
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise Unauthenticated(f"cannot fetch the issuer's keys: {url} did not answer a JWKS ({{'keys': [...]}})")
    keys: dict[str, JwksKey] = {}
    for item in data["keys"]:
        if not isinstance(item, dict) or item.get("use", "sig") != "sig":
            continue
        if item.get("kty") == "oct":  # a symmetric key has no place in a public key set
            continue
        try:
            key = jwt.PyJWK(item)
        except jwt.PyJWTError as exc:
            log.debug("JWKS %s: skipped key %s: %s", url, _shown(item.get("kid")), exc)
            continue
        alg = item.get("alg")
        keys.setdefault(str(item.get("kid", "")), JwksKey(key, alg if isinstance(alg, str) else None))
    return keys


class JwksCache:
    """The issuers' public keys, fetched with httpx and cached per JWKS URL."""

    def __init__(
        self,
        client: httpx.AsyncClient | None = None,
        *,
        ttl: float = JWKS_TTL,
        refetch_interval: float = REFETCH_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._client = client
        self._ttl = ttl
        self._refetch_interval = refetch_interval
        self._clock = clock
        self._sets: dict[str, _KeySet] = {}

    async def key(self, url: str, kid: str | None) -> JwksKey:
        """The key ``kid`` of the JWKS at ``url`` (without ``kid``: the set's only key).

        Raises:
            Unauthenticated: the keys cannot be fetched, or no such key (after one throttled refetch).
        """
        entry = self._sets.setdefault(url, _KeySet())
        async with entry.lock:
            now = self._clock()
            if now - entry.fetched >= self._ttl:
                await self._refresh(url, entry, keep_stale=bool(entry.keys))
            found = _pick(entry.keys, kid)
            if found is None and self._clock() - entry.attempted >= self._refetch_interval:
                await self._refresh(url, entry, keep_stale=False)
                found = _pick(entry.keys, kid)
        if found is not None:
            return found
        if kid is None:
            raise Unauthenticated("ID token: no key id (kid) and the issuer publishes several keys")
        raise Unauthenticated(f"ID token: unknown key id {_shown(kid)} at {url}")

    async def _refresh(self, url: str, entry: _KeySet, *, keep_stale: bool) -> None:
        entry.attempted = self._clock()
        try:
            entry.keys = _parse_jwks(url, await self._fetch(url))
        except Unauthenticated as exc:
            if not keep_stale:
                raise
            log.warning("JWKS refresh failed, keeping the keys fetched before: %s", exc)
            return
        entry.fetched = entry.attempted

    async def _fetch(self, url: str) -> object:
        try:
            if self._client is not None:
                response = await self._client.get(url, timeout=FETCH_TIMEOUT)
            else:
                async with httpx.AsyncClient(timeout=FETCH_TIMEOUT) as client:
                    response = await client.get(url)
        except httpx.HTTPError as exc:
            raise Unauthenticated(f"cannot fetch the issuer's keys: {url}: {type(exc).__name__}: {exc}") from None
        if response.status_code != 200:
            raise Unauthenticated(f"cannot fetch the issuer's keys: {url}: HTTP {response.status_code}")
        try:
            return response.json()
        except ValueError:
            raise Unauthenticated(f"cannot fetch the issuer's keys: {url} did not answer JSON") from None


def _pick(keys: Mapping[str, JwksKey], kid: str | None) -> JwksKey | None:
    if kid is not None:
        return keys.get(kid)
    return next(iter(keys.values())) if len(keys) == 1 else None


# ---------------------------------------------------------------------------------------- verifier


class OidcVerifier:
    """Turns an OIDC ID token into a verified :class:`~workflows.identity.Actor` (see the module doc)."""

    def __init__(
        self,
        config: Config,
        client: httpx.AsyncClient | None = None,
        *,
        leeway: float = LEEWAY,
        clock: Callable[[], float] | None = None,
        jwks: JwksCache | None = None,
    ):
        """``clock`` (tests) is the wall clock for the token's times and the cache's clock."""
        self._entries = list(config.oidc)
        self._leeway = leeway
        self._clock = clock or time.time
        self.jwks = jwks or JwksCache(client, clock=clock or time.monotonic)

    @property
    def configured(self) -> bool:
        """Whether any ``oidc`` entry is configured (without one, every ID token is refused)."""
        return bool(self._entries)

    async def verify(self, token: str, via: Door = "api") -> Actor:
        """The actor an ID token proves.

        Raises:
            Unauthenticated: the token proves nothing (the reason names the check that failed).
        """
        token = token.strip()
        if not looks_like_jwt(token):
            raise Unauthenticated("ID token: not a JWT (three base64url segments)")
        header, unverified = _unverified(token)
        issuer = unverified.get("iss")
        if not isinstance(issuer, str) or not issuer:
            raise Unauthenticated("ID token: no iss claim")
        entries = [e for e in self._entries if e.issuer == issuer]
        if not entries:
            raise Unauthenticated(f"no oidc entry matches issuer {_shown(issuer)}")
        alg = header.get("alg")
        if alg not in ALLOWED_ALGORITHMS:
            raise Unauthenticated(f"ID token: algorithm {_shown(alg)} not allowed (asymmetric signatures only)")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise Unauthenticated("ID token: kid is not a string")
        claims = await self._verified_claims(token, str(alg), kid, issuer, entries[0].jwks_url)
        entry = self._entry_for(claims, entries)
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise Unauthenticated("ID token: no sub claim")
        return Actor(name=entry.as_, verified=True, method="oidc", credential=subject, via=via)

    async def _verified_claims(self, token: str, alg: str, kid: str | None, issuer: str, url: str) -> dict[str, Any]:
        """The payload, once the signature, ``iss`` and the times are checked."""
        key = await self.jwks.key(url, kid)
        if key.alg is not None and key.alg != alg:
            raise Unauthenticated(f"ID token: algorithm {alg} does not match the key's ({_shown(key.alg)})")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key.key,
                algorithms=[alg],
                issuer=issuer,
                options={
                    "verify_signature": True,
                    "verify_aud": False,  # checked per entry, below
                    "verify_exp": False,  # the times are checked below, against our clock
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_iss": True,
                    "require": ["exp", "iss"],
                },
            )
        except jwt.InvalidSignatureError:
            raise Unauthenticated("ID token: signature verification failed") from None
        except jwt.InvalidKeyError:
            raise Unauthenticated(f"ID token: the key {_shown(kid)} does not fit algorithm {alg}") from None
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthenticated(f"ID token: no {exc.claim} claim") from None
        except jwt.InvalidIssuerError:
            raise Unauthenticated("ID token: issuer mismatch") from None
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"ID token: {type(exc).__name__}") from None
        self._check_times(claims)
        return claims

    def _check_times(self, claims: Mapping[str, Any]) -> None:
        now, leeway = self._clock(), self._leeway
        exp, nbf, iat = claims.get("exp"), claims.get("nbf"), claims.get("iat")
        for name, value in (("exp", exp), ("nbf", nbf), ("iat", iat)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise Unauthenticated(f"ID token: {name} is not a number")
        if exp is None or exp + leeway <= now:
            raise Unauthenticated("ID token expired")
        if nbf is not None and nbf - leeway > now:
            raise Unauthenticated("ID token not yet valid (nbf)")
        if iat is not None and iat - leeway > now:
            raise Unauthenticated("ID token issued in the future (iat)")

    def _entry_for(self, claims: Mapping[str, Any], entries: list[OidcIdentity]) -> OidcIdentity:
        """The first entry whose audience and claims all match; else the most telling refusal."""
        audiences = claims.get("aud")
        aud_list = [audiences] if isinstance(audiences, str) else audiences if isinstance(audiences, list) else []
        reason = "ID token: audience mismatch"
        for entry in entries:
            if entry.audience not in aud_list:
                continue
            mismatch = next(
                (name for name, pattern in entry.claims.items() if not claim_matches(claims.get(name), pattern)), None
            )
            if mismatch is None:
                return entry
            if reason == "ID token: audience mismatch":
                missing = mismatch not in claims
                reason = f"ID token: claim {mismatch} {'missing' if missing else 'does not match'}"
        raise Unauthenticated(reason)


def _unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and payload, unverified: read only to choose the issuer's entries and key."""
    try:
        header = jwt.get_unverified_header(token)
        payload = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise Unauthenticated(f"ID token: malformed ({type(exc).__name__})") from None
    if not isinstance(payload, dict):
        raise Unauthenticated("ID token: the payload is not a JSON object")
    return header, payload
