"""A local OIDC issuer: signing keys made in the test, a JWKS on loopback, ID tokens minted at will.

Routes (the route names are what :meth:`FakeServer.calls` takes)::

    GET /.well-known/openid-configuration    discovery   ({"issuer", "jwks_uri", ...})
    GET /.well-known/jwks                    jwks        ({"keys": [public JWKs]})
    GET /_apis/idtoken?api-version=2.0&audience=A
                                             actions.token  (GitHub Actions' ID token request)

The issuer (``iss``) is the server's base URL. Keys are RSA (RS256) or EC P-256 (ES256) key pairs
made with ``cryptography`` when asked for; the newest added key signs by default.

Usage::

    with FakeOidcIssuer() as idp:
        entry = {"issuer": idp.issuer, "audience": "tocsin", "jwks_url": idp.jwks_url,
                 "claims": {"repository": "acme/api"}, "as": "ci-api"}
        token = idp.mint({"aud": "tocsin", "repository": "acme/api"})
        idp.mint({...}, kid="other")           # sign with a named key
        idp.mint({...}, key=stranger_private)  # sign with a key the JWKS does not hold (keeps the kid)
        idp.mint({...}, alg="none")            # unsigned; alg="HS256", secret=b"..." for an HMAC token
        idp.rotate()                           # a new signing key appears in the JWKS
        idp.calls("jwks")                      # the JWKS fetches so far

The GitHub Actions endpoint checks ``Authorization: bearer <request_token>`` (401 otherwise) and
answers ``{"count": 1, "value": <token>}``: :meth:`mint` of :attr:`actions_claims` with the requested
audience. :meth:`actions_env` gives the two environment variables a job would see.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any, Literal

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from .base import FakeServer, Request, Response

__all__ = ["FakeOidcIssuer", "SigningKey", "new_private_key", "github_claims", "b64url"]

JWKS_PATH = "/.well-known/jwks"
DISCOVERY_PATH = "/.well-known/openid-configuration"
ACTIONS_PATH = "/_apis/idtoken"

KeyKind = Literal["rsa", "ec"]


def b64url(data: bytes) -> str:
    """Base64url without padding, as JWS has it."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def new_private_key(kind: KeyKind = "rsa") -> PrivateKeyTypes:
    """A fresh private key: RSA 2048 or EC P-256."""
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def github_claims(repository: str = "acme/payments", ref: str = "refs/heads/main", **extra: Any) -> dict[str, Any]:
    """Claims shaped like a GitHub Actions ID token's (``sub``, ``repository``, ``ref``…)."""
    owner = repository.split("/", 1)[0]
    claims: dict[str, Any] = {
        "sub": f"repo:{repository}:ref:{ref}",
        "repository": repository,
        "repository_owner": owner,
        "repository_id": "123456",
        "ref": ref,
        "ref_type": "branch",
        "sha": "0" * 40,
        "workflow": "ci",
        "job_workflow_ref": f"{repository}/.github/workflows/ci.yml@{ref}",
        "event_name": "push",
        "actor": "octocat",
        "run_id": "42",
        "run_attempt": "1",
        "runner_environment": "github-hosted",
    }
    claims.update(extra)
    return claims


@dataclass
class SigningKey:
    """One key pair of the issuer."""

    kid: str
    alg: str
    private: PrivateKeyTypes
    published: bool = True
    """Whether the JWKS lists it."""

    @property
    def jwk(self) -> dict[str, Any]:
        """The public key as a JWK (with ``kid``, ``alg``, ``use``)."""
        public = self.private.public_key()  # type: ignore[union-attr]
        algo = jwt.algorithms.RSAAlgorithm if isinstance(public, rsa.RSAPublicKey) else jwt.algorithms.ECAlgorithm
        data: dict[str, Any] = json.loads(algo.to_jwk(public))
        data.update({"kid": self.kid, "alg": self.alg, "use": "sig"})
        return data


class FakeOidcIssuer(FakeServer):
    """An OIDC issuer on ``127.0.0.1`` (see the module docstring)."""

    noun = "token request"

    def __init__(
        self,
        *,
        key: KeyKind | None = "rsa",
        actions_claims: dict[str, Any] | None = None,
        lifetime: float = 300,
        port: int = 0,
    ):
        super().__init__(port)
        self.keys: list[SigningKey] = []
        self.request_token = "req-" + secrets.token_urlsafe(16)
        """What the GitHub Actions endpoint wants as ``Authorization: bearer …``."""
        self.actions_claims: dict[str, Any] = actions_claims if actions_claims is not None else github_claims()
        self.lifetime = lifetime
        self._count = 0
        if key is not None:
            self.add_key(key)

    # ------------------------------------------------------------------ addresses

    @property
    def issuer(self) -> str:
        return self.base_url

    @property
    def url(self) -> str:
        return self.base_url

    @property
    def jwks_url(self) -> str:
        return self.base_url + JWKS_PATH

    @property
    def actions_request_url(self) -> str:
        """``ACTIONS_ID_TOKEN_REQUEST_URL`` as GitHub sets it (with ``api-version``; ``&audience=`` is appended)."""
        return self.base_url + ACTIONS_PATH + "?api-version=2.0"

    def actions_env(self) -> dict[str, str]:
        """The two variables a GitHub Actions job with ``id-token: write`` sees."""
        return {
            "ACTIONS_ID_TOKEN_REQUEST_URL": self.actions_request_url,
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": self.request_token,
        }

    # ------------------------------------------------------------------ keys

    def add_key(
        self, kind: KeyKind = "rsa", *, kid: str | None = None, alg: str | None = None, published: bool = True
    ) -> SigningKey:
        """Make a key pair (RS256 for RSA, ES256 for EC unless ``alg`` says otherwise); it signs from now on."""
        with self._cond:
            self._count += 1
            key = SigningKey(
                kid=kid or f"key-{self._count}",
                alg=alg or ("ES256" if kind == "ec" else "RS256"),
                private=new_private_key(kind),
                published=published,
            )
            self.keys.append(key)
            return key

    def rotate(self, kind: KeyKind = "rsa", *, drop_old: bool = False) -> SigningKey:
        """A new signing key appears in the JWKS; with ``drop_old`` the others leave it."""
        with self._cond:
            if drop_old:
                for key in self.keys:
                    key.published = False
            return self.add_key(kind)

    def key(self, kid: str | None = None) -> SigningKey:
        """The key ``kid`` (default: the newest, which signs by default)."""
        with self._cond:
            if kid is None:
                return self.keys[-1]
            return next(k for k in self.keys if k.kid == kid)

    def jwks(self) -> dict[str, Any]:
        with self._cond:
            return {"keys": [k.jwk for k in self.keys if k.published]}

    # ------------------------------------------------------------------ tokens

    def claims(self, claims: dict[str, Any] | None = None, *, now: float | None = None) -> dict[str, Any]:
        """Default claims (``iss``, ``aud`` tocsin, ``sub``, ``iat``, ``nbf``, ``exp``) with ``claims`` over them.

        A ``None`` value removes that claim (``{"exp": None}``: a token that never expires).
        """
        now = time.time() if now is None else now
        merged: dict[str, Any] = {
            "iss": self.issuer,
            "aud": "tocsin",
            "sub": "repo:acme/payments:ref:refs/heads/main",
            "iat": int(now),
            "nbf": int(now),
            "exp": int(now + self.lifetime),
            "jti": secrets.token_hex(8),
        }
        merged.update(claims or {})
        return {k: v for k, v in merged.items() if v is not None}

    def mint(
        self,
        claims: dict[str, Any] | None = None,
        *,
        kid: str | None = None,
        alg: str | None = None,
        key: PrivateKeyTypes | None = None,
        secret: bytes | None = None,
        headers: dict[str, Any] | None = None,
        now: float | None = None,
    ) -> str:
        """A signed ID token with :meth:`claims`.

        ``kid`` picks the issuer's key (default: the newest) and is put in the header (``kid=""``
        leaves it out); ``key`` signs with another private key under that ``kid`` (a forged token);
        ``alg="none"`` makes an unsigned token; ``alg="HS256"`` with ``secret`` an HMAC one.
        """
        payload = self.claims(claims, now=now)
        signer = self.key(kid or None)
        algorithm = alg or signer.alg
        header: dict[str, Any] = {"typ": "JWT", "alg": algorithm}
        if kid != "":
            header["kid"] = kid or signer.kid
        header.update(headers or {})
        if algorithm == "none" or algorithm.startswith("HS"):
            return _unsafe_token(header, payload, secret or b"")
        return jwt.encode(payload, key or signer.private, algorithm=algorithm, headers=header)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ HTTP

    def route(self, request: Request) -> str | None:
        if request.verb != "GET":
            return None
        return {DISCOVERY_PATH: "discovery", JWKS_PATH: "jwks", ACTIONS_PATH: "actions.token"}.get(request.path)

    def handle(self, request: Request) -> Response:
        if request.route == "jwks":
            return Response(200, self.jwks())
        if request.route == "discovery":
            return Response(
                200,
                {
                    "issuer": self.issuer,
                    "jwks_uri": self.jwks_url,
                    "response_types_supported": ["id_token"],
                    "subject_types_supported": ["public"],
                    "id_token_signing_alg_values_supported": sorted({k.alg for k in self.keys}),
                    "claims_supported": sorted(self.claims(self.actions_claims)),
                },
            )
        auth = request.headers.get("authorization", "")
        scheme, _, given = auth.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), self.request_token.encode()):
            return Response(401, {"message": "Bad credentials"})
        audience = request.query.get("audience") or "https://github.com/" + str(
            self.actions_claims.get("repository_owner", "")
        )
        token = self.mint({**self.actions_claims, "aud": audience})
        self._accept({"audience": audience, "token": token})
        return Response(200, {"count": 1, "value": token})


def _unsafe_token(header: dict[str, Any], payload: dict[str, Any], secret: bytes) -> str:
    """A JWS PyJWT would refuse to make: ``alg: none`` or HMAC with any bytes (a public key's PEM)."""
    signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(payload).encode())
    if header["alg"] == "none":
        return signing_input + "."
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[header["alg"]]
    signature = hmac.new(secret, signing_input.encode(), digest).digest()
    return signing_input + "." + b64url(signature)
