"""Identity and authorization: API tokens, roles, ``authorize``, the config checks and ``token create``."""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from operations import Refused
from operations.auth import (
    REFUSALS,
    Unauthenticated,
    authorize,
    check_claim,
    has_role,
    hash_token,
    identity_notice,
    new_token,
    recent_refusals,
    roles_of,
    token_actor,
    unverified_allowed,
)
from operations.config import ConfigError, parse_config
from operations.context import Context
from operations.deployments import approve
from operations.incidents import acknowledge
from operations.silences import add_silence
from starters.cli.tokens import expiry, token_line
from tests.helpers import cli
from workflows.config import Config, default_config, validate_references
from workflows.identity import Actor
from workflows.policy import gates
from workflows.policy.roles import approver_pool, grants

ALICE_TOKEN = "tocsin_alice-secret"
BOB_TOKEN = "tocsin_bob-secret"
OLD_TOKEN = "tocsin_old-secret"


def config(checked: bool = True, **extra: Any) -> Config:
    data: dict[str, Any] = {
        "channels": {"c": {"type": "console"}},
        "receivers": [{"name": "r", "channels": ["c"]}],
        "route": {"receiver": "r"},
        "environments": {
            "staging": {"required_approvals": 0},
            "prod": {"production": True, "approvers": ["alice", "sre"]},
        },
        "users": [
            {
                "name": "alice",
                "slack": "UALICE",
                "roles": ["responder", "deployer:staging"],
                "tokens": [
                    {"id": "laptop", "sha256": hash_token(ALICE_TOKEN)},
                    {"id": "old", "sha256": hash_token(OLD_TOKEN), "expires": "2026-01-31"},
                ],
            },
            {
                "name": "bob",
                "groups": ["sre"],
                "roles": ["deployer:*"],
                "tokens": [{"id": "ci", "sha256": hash_token(BOB_TOKEN)}],
            },
            {"name": "root", "roles": ["admin"]},
        ],
        "oidc": [
            {
                "issuer": "https://token.actions.githubusercontent.com",
                "audience": "tocsin",
                "jwks_url": "https://token.actions.githubusercontent.com/.well-known/jwks",
                "as": "ci-payments",
                "roles": ["builder", "deployer:staging"],
            }
        ],
    }
    data.update(extra)
    if not checked:
        return Config.model_validate(data)
    parsed, _ = parse_config(data)
    return parsed


def verified(name: str, method: str = "token", credential: str = "x") -> Actor:
    return Actor(name=name, verified=True, method=method, credential=credential, via="api")  # type: ignore[arg-type]


# ---------------------------------------------------------------- tokens


def test_a_token_is_its_users_and_its_credential_is_the_id_never_the_secret() -> None:
    cfg = config()
    actor = token_actor(cfg, ALICE_TOKEN, "api", today=date(2026, 6, 1))
    assert (actor.name, actor.verified, actor.method, actor.credential, actor.via) == (
        "alice",
        True,
        "token",
        "laptop",
        "api",
    )
    assert ALICE_TOKEN not in actor.model_dump_json() and hash_token(ALICE_TOKEN) not in actor.model_dump_json()
    assert token_actor(cfg, BOB_TOKEN, "cli").name == "bob"


def test_unknown_and_expired_tokens_are_unauthenticated() -> None:
    cfg = config()
    with pytest.raises(Unauthenticated, match="unknown API token"):
        token_actor(cfg, "tocsin_nobody-knows", "api")
    assert token_actor(cfg, OLD_TOKEN, "api", today=date(2026, 1, 31)).credential == "old"  # its last day
    with pytest.raises(Unauthenticated, match="'old' of alice expired on 2026-01-31"):
        token_actor(cfg, OLD_TOKEN, "api", today=date(2026, 2, 1))


def test_new_tokens_are_prefixed_random_and_hash_to_hex() -> None:
    one, two = new_token(), new_token()
    assert one.startswith("tocsin_") and one != two and len(one) > 40
    assert re.fullmatch(r"[0-9a-f]{64}", hash_token(one))


# ---------------------------------------------------------------- roles


def test_roles_of_each_kind_of_actor() -> None:
    cfg = config()
    assert roles_of(cfg, verified("alice")) == {"responder", "deployer:staging", "approver:prod"}
    assert roles_of(cfg, verified("bob")) == {"deployer:*", "approver:prod"}  # prod lists bob's group sre
    assert roles_of(cfg, verified("ci-payments", "oidc", "repo:acme/payments")) == {"builder", "deployer:staging"}
    # a Slack actor is the user whose slack id is its credential, whatever name it came with
    assert roles_of(cfg, verified("alice.smith", "slack", "UALICE")) == {
        "responder",
        "deployer:staging",
        "approver:prod",
    }
    assert roles_of(cfg, verified("mallory", "slack", "UOTHER")) == set()
    assert roles_of(cfg, verified("pagerduty:Jo", "pagerduty", "")) == {"responder"}
    assert roles_of(cfg, Actor.system()) == {"admin"}
    assert roles_of(cfg, Actor(name="alice")) == set()  # unverified: no roles


def test_star_and_admin_grant_and_nothing_else_does() -> None:
    assert grants(["deployer:*"], "deployer:prod") and grants(["deployer:*"], "deployer:anything")
    assert not grants(["deployer:*"], "approver:prod")
    assert not grants(["deployer:staging"], "deployer:prod")
    assert grants(["admin"], "approver:prod") and grants(["admin"], "silencer")
    assert not grants(["responder"], "silencer")
    cfg = config()
    assert has_role(cfg, verified("bob"), "deployer:prod")
    assert has_role(cfg, verified("root"), "silencer")
    assert not has_role(cfg, verified("alice"), "deployer:prod")


def test_approver_pool_adds_listed_groups_and_role_holders() -> None:
    people = [("alice", [], []), ("bob", ["sre"], []), ("carol", [], ["approver:*"]), ("dave", [], ["approver:qa"])]
    assert approver_pool("prod", ["alice", "sre"], people) == ["alice", "sre", "bob", "carol"]
    assert approver_pool("prod", [], people) == []  # anyone


# ---------------------------------------------------------------- authorize


def test_authorize_lets_role_holders_act_and_refuses_the_rest_with_reason_log_and_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cfg = config()
    authorize(cfg, verified("alice"), "responder")
    authorize(cfg, verified("bob"), "approver:prod")
    before = REFUSALS.labels("role")._value.get()
    with (
        caplog.at_level(logging.WARNING, logger="tocsin.audit"),
        pytest.raises(Refused, match="alice does not hold the role silencer"),
    ):
        authorize(cfg, verified("alice", credential="laptop"), "silencer")
    assert REFUSALS.labels("role")._value.get() == before + 1
    assert "refused alice (token:laptop, via api) the role silencer" in caplog.text
    last = recent_refusals()[-1]
    assert (last.actor.name, last.role, last.kind) == ("alice", "silencer", "role")


def test_unverified_actors_act_only_where_allowed_and_never_approve_in_production() -> None:
    anyone = Actor(name="alice")
    builtin = default_config()
    assert unverified_allowed(builtin) and identity_notice(builtin) is not None
    authorize(builtin, anyone, "deployer:prod")
    cfg = config()
    assert not unverified_allowed(cfg) and identity_notice(cfg) is None
    with pytest.raises(Refused, match="not verified and auth.allow_unverified is false"):
        authorize(cfg, anyone, "responder")
    relaxed = config(auth={"allow_unverified": True})
    authorize(relaxed, anyone, "responder")
    authorize(relaxed, anyone, "approver:staging")
    with pytest.raises(Refused, match="approvals in prod \\(production\\) need a verified identity"):
        authorize(relaxed, anyone, "approver:prod")


def test_by_must_name_the_credentials_identity() -> None:
    check_claim(verified("alice"), "alice")
    check_claim(verified("alice"), None)
    check_claim(Actor(name="bob"), "carol")  # unverified: --by is the identity
    with pytest.raises(Refused, match="--by 'bob' is not the credential's identity \\(alice\\)"):
        check_claim(verified("alice"), "bob")


class _NoTemporal:
    """A client no operation may reach: authorization refuses first."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"reached Temporal ({name}) although authorization should have refused")


def test_operations_refuse_before_touching_temporal() -> None:
    ctx = Context(_NoTemporal(), config(), "q")  # type: ignore[arg-type]
    with pytest.raises(Refused, match="does not hold the role responder"):
        asyncio.run(acknowledge(ctx, verified("ci-payments", "oidc"), "incident/x"))
    with pytest.raises(Refused, match="does not hold the role silencer"):
        asyncio.run(add_silence(ctx, verified("alice"), ['service="api"'], "1h", "maintenance"))
    with pytest.raises(Refused, match="not verified"):
        asyncio.run(acknowledge(ctx, Actor(name="alice"), "incident/x"))


def test_approval_needs_the_environments_approver_role() -> None:
    class Described:
        class typed_search_attributes:
            @staticmethod
            def get(key: Any) -> str:
                return "prod"

    class Handle:
        async def describe(self) -> Any:
            return Described()

        async def execute_update(self, *args: Any, **kwargs: Any) -> Any:
            raise AssertionError("the update was sent although authorization should have refused")

    class Client:
        def get_workflow_handle(self, wid: str, **kwargs: Any) -> Handle:
            return Handle()

    ctx = Context(Client(), config(), "q")  # type: ignore[arg-type]
    with pytest.raises(Refused, match="ci-payments does not hold the role approver:prod"):
        asyncio.run(approve(ctx, verified("ci-payments", "oidc"), "deploy/api/prod/v1"))


# ---------------------------------------------------------------- four eyes (pure)


def test_four_eyes_compares_identities_not_spellings() -> None:
    carol = verified("carol", "slack", "UCAROL")
    common = {"env": "prod", "approvers": [], "four_eyes": True, "approved_by": []}
    same = gates.approval_refusal(
        "Carol", deployer="carol", by_keys=Actor(name="Carol").keys(), deployer_keys=carol.keys(), **common
    )  # type: ignore[arg-type]
    assert same is not None and "four eyes" in same
    by_slack = gates.approval_refusal(
        "carol-alt",
        deployer="carol",
        by_keys=verified("carol-alt", "slack", "UCAROL").keys(),
        deployer_keys=carol.keys(),
        **common,  # type: ignore[arg-type]
    )
    assert by_slack is not None and "four eyes" in by_slack
    other = gates.approval_refusal(
        "dave", deployer="carol", by_keys=verified("dave").keys(), deployer_keys=carol.keys(), **common
    )  # type: ignore[arg-type]
    assert other is None
    # token ids are not identities: two users may both call theirs "laptop"
    assert verified("x", "token", "laptop").keys() & verified("y", "token", "laptop").keys() == frozenset()


# ---------------------------------------------------------------- config check


def _issues(cfg: Config, level: str) -> list[str]:
    return [str(i) for i in validate_references(cfg) if i.level == level]


def test_config_check_of_users_and_oidc() -> None:
    digest = hash_token("shared")
    cfg = config(
        checked=False,
        users=[
            {"name": "alice", "tokens": [{"id": "a", "sha256": digest}, {"id": "a", "sha256": hash_token("2")}]},
            {"name": "alice"},
            {
                "name": "bob",
                "tokens": [
                    {"id": "b", "sha256": digest},
                    {"id": "old", "sha256": hash_token("3"), "expires": "2020-01-01"},
                ],
            },
        ],
        oidc=[{"issuer": "i", "audience": "a", "jwks_url": "j", "as": "bob"}],
        environments={"prod": {"approvers": ["alice", "sre", "nobody"]}},
    )
    errors = _issues(cfg, "error")
    assert "users[1].name: duplicate user 'alice' (also users[0])" in errors
    assert "users[0].tokens[1].id: duplicate token id 'a' for alice" in errors
    assert "users[2].tokens[0].sha256: the same token hash as users[0].tokens[0]" in errors
    assert "oidc[0].as: 'bob' is also a user's name (users[2])" in errors
    warnings = _issues(cfg, "warning")
    assert "users[2].tokens[1].expires: token 'old' expired on 2020-01-01" in warnings
    assert "environments.prod.approvers[1]: 'sre' is neither a user nor a group" in warnings
    assert "environments.prod.approvers[2]: 'nobody' is neither a user nor a group" in warnings
    assert _issues(config(), "error") == []
    assert _issues(config(), "warning") == ["users[0].tokens[1].expires: token 'old' expired on 2026-01-31"]


def test_unknown_roles_are_config_errors() -> None:
    with pytest.raises(ValidationError, match="unknown role 'deployer'"):
        config(checked=False, users=[{"name": "x", "roles": ["deployer"]}])
    with pytest.raises(ConfigError, match="users\\[0\\].roles: unknown role 'approver'"):
        config(users=[{"name": "x", "roles": ["approver"]}])


def test_approvers_unknown_are_not_warned_without_users() -> None:
    cfg = config(users=[], oidc=[], environments={"prod": {"approvers": ["alice"]}})
    assert _issues(cfg, "warning") == []


# ---------------------------------------------------------------- tocsin token create


def test_expiry_takes_durations_dates_and_never() -> None:
    today = date(2026, 11, 30)
    assert expiry("90d", today) == date(2027, 2, 28)
    assert expiry("2027-03-01", today) == date(2027, 3, 1)
    assert expiry("never", today) is None
    for bad in ("soon", "1h", "2020-01-01"):
        with pytest.raises(ValueError):
            expiry(bad, today)
    assert (
        token_line("laptop", "ab" * 32, date(2027, 3, 1))
        == f"- {{id: laptop, sha256: {'ab' * 32}, expires: 2027-03-01}}"
    )


def test_token_create_prints_a_token_whose_line_configures_it(tmp_path: Path) -> None:
    path = tmp_path / "tocsin.yaml"
    path.write_text(
        "channels: {c: {type: console}}\nreceivers: [{name: r, channels: [c]}]\nroute: {receiver: r}\n"
        "users:\n  - name: alice\n",
        encoding="utf-8",
    )
    done = cli("token", "create", "--user", "alice", "--id", "laptop", "--expires", "30d", "--config", str(path))
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    assert token.startswith("tocsin_") and token not in done.stderr
    line = next(ln.strip() for ln in done.stderr.splitlines() if ln.strip().startswith("- {id: laptop"))
    assert f"sha256: {hash_token(token)}" in line and "expires: " in line
    path.write_text(path.read_text(encoding="utf-8") + "    tokens:\n      " + line + "\n", encoding="utf-8")
    check = cli("config", "check", "--config", str(path))
    assert check.returncode == 0, check.stderr
    unknown = cli("token", "create", "--user", "bob", "--config", str(path))
    assert unknown.returncode == 2 and "--user" in unknown.stderr and unknown.stdout == ""
    default_id = cli("token", "create", "--user", "alice", "--config", str(path))
    assert default_id.returncode == 0 and re.search(
        r"- \{id: token-\d{8}, sha256: [0-9a-f]{64}, expires: ", default_id.stderr
    )
