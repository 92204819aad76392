"""OIDC ID tokens (operations.oidc) against a local issuer on loopback, and the CLI's GitHub Actions fetch."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from operations.errors import Unauthenticated
from operations.oidc import OidcVerifier, claim_matches, looks_like_jwt
from starters.cli.oidc import (
    DEFAULT_AUDIENCE,
    github_actions_token,
    oidc_audience,
    oidc_token,
    oidc_token_from_env,
)
from tests.fakes.oidc import FakeOidcIssuer, github_claims, new_private_key
from workflows.config import Config
from workflows.identity import Actor

PAYMENTS = {"repository": "acme/payments", "ref": "refs/heads/main"}


class Clock:
    """A settable clock for the verifier (token times and JWKS cache)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def idp() -> Iterator[FakeOidcIssuer]:
    with FakeOidcIssuer() as issuer:
        yield issuer


def config_for(issuer: FakeOidcIssuer, *entries: dict[str, Any], jwks_url: str | None = None) -> Config:
    """A config whose oidc entries trust ``issuer`` (defaults: audience tocsin, as ci-payments)."""
    base = {"issuer": issuer.issuer, "audience": "tocsin", "jwks_url": jwks_url or issuer.jwks_url}
    items = entries or ({"claims": dict(PAYMENTS), "as": "ci-payments", "roles": ["builder"]},)
    return Config.model_validate({"oidc": [{**base, **item} for item in items]})


def verifier(issuer: FakeOidcIssuer, *entries: dict[str, Any], clock: Clock | None = None) -> OidcVerifier:
    return OidcVerifier(config_for(issuer, *entries), clock=clock)


async def refused(v: OidcVerifier, token: str, match: str) -> Unauthenticated:
    with pytest.raises(Unauthenticated, match=match) as info:
        await v.verify(token, via="api")
    assert token not in str(info.value)
    return info.value


# ------------------------------------------------------------------------------------ accepted


async def test_good_token_gives_the_entry_identity(idp: FakeOidcIssuer) -> None:
    token = idp.mint(github_claims())
    actor = await verifier(idp).verify(token, via="cli")
    assert actor == Actor(
        name="ci-payments", verified=True, method="oidc", credential="repo:acme/payments:ref:refs/heads/main", via="cli"
    )


async def test_ec_key_es256_accepted() -> None:
    with FakeOidcIssuer(key="ec") as idp:
        token = idp.mint(github_claims())
        assert idp.key().alg == "ES256"
        actor = await verifier(idp).verify(token, via="api")
        assert actor.name == "ci-payments" and actor.method == "oidc"


async def test_client_given_is_used_for_the_jwks(idp: FakeOidcIssuer) -> None:
    seen: list[str] = []

    async def hook(request: httpx.Request) -> None:
        seen.append(str(request.url))

    async with httpx.AsyncClient(event_hooks={"request": [hook]}) as client:
        v = OidcVerifier(config_for(idp), client)
        await v.verify(idp.mint(github_claims()), via="api")
    assert seen == [idp.jwks_url]


async def test_audience_in_a_list_accepted(idp: FakeOidcIssuer) -> None:
    token = idp.mint(github_claims(aud=["other", "tocsin"]))
    assert (await verifier(idp).verify(token, via="api")).name == "ci-payments"


# ------------------------------------------------------------------------------------ signature and algorithm


async def test_wrong_signature_same_kid_refused(idp: FakeOidcIssuer) -> None:
    forged = idp.mint(github_claims(), key=new_private_key("rsa"))
    await refused(verifier(idp), forged, "signature verification failed")


async def test_alg_none_refused(idp: FakeOidcIssuer) -> None:
    await refused(verifier(idp), idp.mint(github_claims(), alg="none"), "algorithm 'none' not allowed")


async def test_hs256_signed_with_the_public_key_refused(idp: FakeOidcIssuer) -> None:
    public_pem = (
        idp.key()
        .private.public_key()  # type: ignore[union-attr]
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    token = idp.mint(github_claims(), alg="HS256", secret=public_pem)
    await refused(verifier(idp), token, "algorithm 'HS256' not allowed")


async def test_alg_not_matching_the_key_refused(idp: FakeOidcIssuer) -> None:
    # PS256 with an RSA key the JWKS pins to RS256
    token = idp.mint(github_claims(), alg="PS256")
    await refused(verifier(idp), token, "does not match the key")


# ------------------------------------------------------------------------------------ iss, aud, times


async def test_wrong_issuer_refused(idp: FakeOidcIssuer) -> None:
    token = idp.mint(github_claims(iss="https://evil.example"))
    await refused(verifier(idp), token, "no oidc entry matches issuer 'https://evil.example'")


async def test_wrong_audience_refused(idp: FakeOidcIssuer) -> None:
    await refused(verifier(idp), idp.mint(github_claims(aud="someone-else")), "audience mismatch")


async def test_missing_audience_refused(idp: FakeOidcIssuer) -> None:
    await refused(verifier(idp), idp.mint(github_claims(aud=None)), "audience mismatch")


async def test_expired_refused_and_leeway_kept(idp: FakeOidcIssuer) -> None:
    now = time.time()
    v = verifier(idp)
    await refused(v, idp.mint(github_claims(exp=int(now - 120))), "ID token expired")
    assert (await v.verify(idp.mint(github_claims(exp=int(now - 20))), via="api")).name == "ci-payments"


async def test_exp_required(idp: FakeOidcIssuer) -> None:
    await refused(verifier(idp), idp.mint(github_claims(exp=None)), "no exp claim")


async def test_nbf_in_the_future_refused(idp: FakeOidcIssuer) -> None:
    await refused(verifier(idp), idp.mint(github_claims(nbf=int(time.time() + 600))), "not yet valid")


async def test_iat_in_the_future_refused(idp: FakeOidcIssuer) -> None:
    await refused(verifier(idp), idp.mint(github_claims(iat=int(time.time() + 600))), "issued in the future")


async def test_sub_required(idp: FakeOidcIssuer) -> None:
    await refused(verifier(idp), idp.mint(github_claims(sub=None)), "no sub claim")


# ------------------------------------------------------------------------------------ claims


async def test_claim_mismatch_refused(idp: FakeOidcIssuer) -> None:
    token = idp.mint(github_claims(repository="acme/other"))
    await refused(verifier(idp), token, "claim repository does not match")


async def test_claim_missing_refused(idp: FakeOidcIssuer) -> None:
    claims = github_claims()
    del claims["ref"]
    await refused(verifier(idp), idp.mint(claims), "claim ref missing")


async def test_glob_claims(idp: FakeOidcIssuer) -> None:
    v = verifier(idp, {"claims": {"repository": "acme/payments", "ref": "refs/heads/*"}, "as": "ci-branches"})
    actor = await v.verify(idp.mint(github_claims(ref="refs/heads/release/1.2")), via="api")
    assert actor.name == "ci-branches"
    await refused(v, idp.mint(github_claims(ref="refs/tags/v1.2")), "claim ref does not match")
    assert claim_matches(True, "true") and claim_matches(7, "7") and not claim_matches(["a"], "*")
    assert not claim_matches("Refs/heads/x", "refs/heads/*")  # case-sensitive everywhere


async def test_first_matching_entry_of_an_issuer_wins(idp: FakeOidcIssuer) -> None:
    v = verifier(
        idp,
        {"claims": {"repository": "acme/payments"}, "as": "ci-payments"},
        {"claims": {"repository": "acme/web"}, "as": "ci-web"},
        {"claims": {"repository": "acme/*"}, "as": "ci-acme"},
        {"audience": "other", "claims": {}, "as": "ci-other"},
    )
    assert (await v.verify(idp.mint(github_claims("acme/web")), via="api")).name == "ci-web"
    assert (await v.verify(idp.mint(github_claims("acme/api")), via="api")).name == "ci-acme"
    assert (await v.verify(idp.mint(github_claims("acme/payments")), via="api")).name == "ci-payments"
    assert (await v.verify(idp.mint(github_claims("x/y", aud="other")), via="api")).name == "ci-other"
    await refused(v, idp.mint(github_claims("evil/repo")), "claim repository does not match")


# ------------------------------------------------------------------------------------ keys: cache and rotation


async def test_unknown_kid_refetched_once_then_refused(idp: FakeOidcIssuer) -> None:
    clock = Clock()
    v = verifier(idp, clock=clock)
    await v.verify(idp.mint(github_claims()), via="api")
    assert len(idp.calls("jwks")) == 1
    await refused(v, idp.mint(github_claims(), headers={"kid": "ghost"}), "unknown key id 'ghost'")
    assert len(idp.calls("jwks")) == 1  # keys fetched less than a minute ago: not again
    clock.advance(61)
    ghost = idp.mint(github_claims(), headers={"kid": "ghost"}, now=clock.now)
    await refused(v, ghost, "unknown key id 'ghost'")
    assert len(idp.calls("jwks")) == 2  # one refetch for the unknown kid
    await refused(v, ghost, "unknown key id")
    assert len(idp.calls("jwks")) == 2  # not again within a minute
    clock.advance(61)
    await refused(v, idp.mint(github_claims(), headers={"kid": "ghost"}, now=clock.now), "unknown key id")
    assert len(idp.calls("jwks")) == 3


async def test_key_rotation_accepted_after_refetch(idp: FakeOidcIssuer) -> None:
    clock = Clock()
    v = verifier(idp, clock=clock)
    await v.verify(idp.mint(github_claims()), via="api")
    new = idp.rotate(drop_old=True)
    clock.advance(61)
    actor = await v.verify(idp.mint(github_claims(), kid=new.kid, now=clock.now), via="api")
    assert actor.name == "ci-payments"
    assert len(idp.calls("jwks")) == 2


async def test_keys_cached_then_refreshed_after_the_ttl(idp: FakeOidcIssuer) -> None:
    clock = Clock()
    v = verifier(idp, clock=clock)
    old = idp.key()
    for _ in range(3):
        await v.verify(idp.mint(github_claims(), now=clock.now), via="api")
    assert len(idp.calls("jwks")) == 1
    idp.rotate(drop_old=True)
    clock.advance(3601)
    await refused(v, idp.mint(github_claims(), kid=old.kid, now=clock.now), "unknown key id")
    assert len(idp.calls("jwks")) == 2  # the TTL refresh; the refetch for the kid is throttled


async def test_jwks_unreachable_is_unauthenticated(idp: FakeOidcIssuer) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    v = OidcVerifier(config_for(idp, jwks_url=f"http://127.0.0.1:{port}/jwks"))
    await refused(v, idp.mint(github_claims()), "cannot fetch the issuer's keys")


async def test_jwks_error_status_is_unauthenticated(idp: FakeOidcIssuer) -> None:
    idp.fail_next(1, status=503, route="jwks")
    v = verifier(idp)
    await refused(v, idp.mint(github_claims()), r"cannot fetch the issuer's keys: .* HTTP 503")
    idp.respond_next(1, body={"not": "a jwks"}, route="jwks")
    await refused(v, idp.mint(github_claims()), "did not answer a JWKS")


# ------------------------------------------------------------------------------------ shape


def test_looks_like_jwt(idp: FakeOidcIssuer) -> None:
    assert looks_like_jwt(idp.mint(github_claims()))
    assert looks_like_jwt(idp.mint(github_claims(), alg="none"))
    assert not looks_like_jwt("tocsin_" + "a" * 43)
    assert not looks_like_jwt("a.b")
    assert not looks_like_jwt("a.b.c.d")
    assert not looks_like_jwt("a b.c.d")


async def test_garbage_refused_without_echo(idp: FakeOidcIssuer) -> None:
    await refused(verifier(idp), "not-a-token", "not a JWT")
    await refused(verifier(idp), "eyJub3QganNvbg.eyJ4IjoxfQ.c2ln", "malformed")


# ------------------------------------------------------------------------------------ CLI: GitHub Actions


@pytest.fixture
def no_ci_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in (
        "ACTIONS_ID_TOKEN_REQUEST_URL",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
        "TOCSIN_OIDC_TOKEN",
        "TOCSIN_OIDC_AUDIENCE",
    ):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


async def test_github_actions_token_fetched_and_verified(idp: FakeOidcIssuer, no_ci_env: pytest.MonkeyPatch) -> None:
    for name, value in idp.actions_env().items():
        no_ci_env.setenv(name, value)
    token = await github_actions_token(oidc_audience())
    (call,) = idp.calls("actions.token")
    assert call.query == {"api-version": "2.0", "audience": DEFAULT_AUDIENCE}
    assert call.headers["authorization"] == f"bearer {idp.request_token}"
    actor = await verifier(idp).verify(token, via="cli")
    assert actor.name == "ci-payments" and actor.credential == "repo:acme/payments:ref:refs/heads/main"

    no_ci_env.setenv("TOCSIN_OIDC_AUDIENCE", "tocsin-prod")
    assert await oidc_token() is not None
    assert idp.calls("actions.token")[-1].query["audience"] == "tocsin-prod"


async def test_github_actions_token_bad_request_token(idp: FakeOidcIssuer, no_ci_env: pytest.MonkeyPatch) -> None:
    no_ci_env.setenv("ACTIONS_ID_TOKEN_REQUEST_URL", idp.actions_request_url)
    no_ci_env.setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "wrong")
    with pytest.raises(Unauthenticated, match="HTTP 401") as info:
        await github_actions_token("tocsin")
    assert "wrong" not in str(info.value)


async def test_github_actions_token_without_env(no_ci_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(Unauthenticated, match="ACTIONS_ID_TOKEN_REQUEST_URL is not set.*id-token: write"):
        await github_actions_token("tocsin")
    no_ci_env.setenv("ACTIONS_ID_TOKEN_REQUEST_URL", "http://127.0.0.1:9/x?api-version=2.0")
    with pytest.raises(Unauthenticated, match="ACTIONS_ID_TOKEN_REQUEST_TOKEN is not set"):
        await github_actions_token("tocsin")


async def test_oidc_token_from_env(no_ci_env: pytest.MonkeyPatch) -> None:
    assert oidc_token_from_env() is None
    assert await oidc_token() is None
    assert oidc_audience() == "tocsin"
    no_ci_env.setenv("TOCSIN_OIDC_TOKEN", " a.b.c \n")
    assert oidc_token_from_env() == "a.b.c"
    assert await oidc_token() == "a.b.c"


async def test_failed_ttl_refresh_keeps_the_keys_it_had(idp: FakeOidcIssuer) -> None:
    clock = Clock()
    v = verifier(idp, clock=clock)
    await v.verify(idp.mint(github_claims()), via="api")
    clock.advance(3601)
    idp.fail_next(1, status=503, route="jwks")
    assert (await v.verify(idp.mint(github_claims(), now=clock.now), via="api")).name == "ci-payments"
    assert [c.status for c in idp.calls("jwks")] == [200, 503]
