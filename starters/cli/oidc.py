"""The CLI's OIDC ID token, for remote mode from CI (the gateway verifies it, see :mod:`operations.oidc`).

Where the token comes from, first match wins (:func:`oidc_token`):

1. ``TOCSIN_OIDC_TOKEN`` — an ID token the job already holds (any issuer);
2. inside GitHub Actions (``ACTIONS_ID_TOKEN_REQUEST_URL`` set) — the job's ID token, requested
   for the audience ``TOCSIN_OIDC_AUDIENCE`` (default ``tocsin``). The workflow needs
   ``permissions: id-token: write``, without which GitHub sets neither request variable.

The token is never printed nor put in an error message.
"""

from __future__ import annotations

import os
from urllib.parse import urlencode

import httpx

from operations.errors import Unauthenticated

__all__ = [
    "DEFAULT_AUDIENCE",
    "REQUEST_URL_ENV",
    "REQUEST_TOKEN_ENV",
    "oidc_audience",
    "oidc_token_from_env",
    "in_github_actions",
    "github_actions_token",
    "oidc_token",
]

DEFAULT_AUDIENCE = "tocsin"
"""The audience requested when ``TOCSIN_OIDC_AUDIENCE`` is unset (the ``oidc[].audience`` to configure)."""
REQUEST_URL_ENV = "ACTIONS_ID_TOKEN_REQUEST_URL"
REQUEST_TOKEN_ENV = "ACTIONS_ID_TOKEN_REQUEST_TOKEN"
TIMEOUT = 10.0
"""Seconds the token request may take."""

_NO_PERMISSION = (
    "{name} is not set: to fetch a GitHub Actions ID token the job needs `permissions: id-token: write` "
    "(or set TOCSIN_OIDC_TOKEN, or TOCSIN_TOKEN for an API token)"
)


def oidc_audience() -> str:
    """The audience to request: ``TOCSIN_OIDC_AUDIENCE``, else ``tocsin``."""
    return os.environ.get("TOCSIN_OIDC_AUDIENCE", "").strip() or DEFAULT_AUDIENCE


def oidc_token_from_env() -> str | None:
    """``TOCSIN_OIDC_TOKEN`` when set (and not blank), else None."""
    token = os.environ.get("TOCSIN_OIDC_TOKEN", "").strip()
    return token or None


def in_github_actions() -> bool:
    """Whether this job can request a GitHub Actions ID token (``ACTIONS_ID_TOKEN_REQUEST_URL`` is set)."""
    return bool(os.environ.get(REQUEST_URL_ENV, "").strip())


async def github_actions_token(audience: str | None = None, *, client: httpx.AsyncClient | None = None) -> str:
    """The GitHub Actions job's ID token for ``audience`` (default: :func:`oidc_audience`).

    Raises:
        Unauthenticated: the request variables are missing (no ``id-token: write`` permission),
            or GitHub refused or did not answer a token.
    """
    url = os.environ.get(REQUEST_URL_ENV, "").strip()
    request_token = os.environ.get(REQUEST_TOKEN_ENV, "").strip()
    for name, given in ((REQUEST_URL_ENV, url), (REQUEST_TOKEN_ENV, request_token)):
        if not given:
            raise Unauthenticated(_NO_PERMISSION.format(name=name))
    separator = "&" if "?" in url else "?"
    target = f"{url}{separator}{urlencode({'audience': audience or oidc_audience()})}"
    headers = {"Authorization": f"bearer {request_token}", "Accept": "application/json; api-version=2.0"}
    try:
        if client is not None:
            response = await client.get(target, headers=headers, timeout=TIMEOUT)
        else:
            async with httpx.AsyncClient(timeout=TIMEOUT) as own:
                response = await own.get(target, headers=headers)
    except httpx.HTTPError as exc:
        raise Unauthenticated(f"cannot request the GitHub Actions ID token: {type(exc).__name__}: {exc}") from None
    if response.status_code != 200:
        raise Unauthenticated(f"GitHub Actions refused the ID token request: HTTP {response.status_code}")
    value: object = None
    try:
        value = response.json().get("value")
    except (ValueError, AttributeError):
        pass
    if not isinstance(value, str) or not value:
        raise Unauthenticated("GitHub Actions answered the ID token request without a token (no `value`)")
    return value


async def oidc_token(audience: str | None = None) -> str | None:
    """The ID token remote mode sends: ``TOCSIN_OIDC_TOKEN``, else GitHub Actions', else None."""
    token = oidc_token_from_env()
    if token is not None:
        return token
    if in_github_actions():
        return await github_actions_token(audience)
    return None
