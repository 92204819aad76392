"""Config and access changes for the audit journal (``workflows.policy.config_changes``): pure, no journal."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

from operations.config import parse_config
from workflows.audit import JournalEntry
from workflows.config import Config
from workflows.policy.config_changes import config_change_entries, config_digest, config_view

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
HASH_A = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
HASH_B = "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752"
SLACK_TOKEN = "xoxb-1234567890-abcdefghijklmnop"
HOOK_SECRET = "Bearer s3cr3t-deploy-key-99"
DISCORD_SECRET_PATH = "https://discord.com/api/webhooks/123456/AbCdEfSeCrEt"

BASE: dict[str, Any] = {
    "channels": {
        "ci": {"type": "slack", "token": "${SLACK_BOT_TOKEN}", "channel": "#ci"},
        "literal": {"type": "slack", "token": SLACK_TOKEN, "channel": "#ops"},
        "disc": {"type": "discord", "url": DISCORD_SECRET_PATH},
    },
    "receivers": [{"name": "builds", "channels": ["ci"]}, {"name": "ops", "channels": ["literal", "disc"]}],
    "route": {"receiver": "builds", "routes": [{"matchers": ['severity="critical"'], "receiver": "ops"}]},
    "environments": {
        "prod": {
            "approvers": ["alice"],
            "required_approvals": 1,
            "production": True,
            "hooks": {
                "deploy": {
                    "url": "https://deployer.example/hook?token=abc123secret456",
                    "headers": {"Authorization": HOOK_SECRET},
                }
            },
        }
    },
    "users": [
        {"name": "alice", "roles": ["responder"], "tokens": [{"id": "laptop", "sha256": HASH_A}]},
        {"name": "bob", "roles": ["deployer:prod"]},
    ],
    "oidc": [
        {
            "issuer": "https://token.actions.githubusercontent.com",
            "audience": "tocsin",
            "jwks_url": "https://token.actions.githubusercontent.com/.well-known/jwks",
            "claims": {"repository": "acme/payments"},
            "as": "ci-payments",
            "roles": ["builder"],
        }
    ],
}


def _config(data: dict[str, Any]) -> Config:
    config, _ = parse_config(copy.deepcopy(data))
    return config


def _entries(
    data: dict[str, Any], last: list[JournalEntry] | None = None, seq: int = 7, now: datetime = NOW
) -> list[JournalEntry]:
    detail = last[0].detail if last else None
    return config_change_entries(
        _config(data), file="tocsin.yaml", now=now, last_seq=seq if last else None, last_detail=detail
    )


def _changed(data: dict[str, Any], now: datetime = NOW) -> tuple[JournalEntry, list[dict[str, Any]]]:
    first = _entries(BASE)
    out = _entries(data, first, now=now)
    assert out and out[0].action == "config.changed"
    return out[0], [e.detail for e in out[1:]]


def test_first_config_is_a_baseline_and_the_same_config_journals_nothing() -> None:
    first = _entries(BASE)
    assert [e.action for e in first] == ["config.changed"]
    detail = first[0].detail
    assert detail["initial"] is True and detail["changes"] == {} and detail["file"] == "tocsin.yaml"
    assert first[0].key == f"config/0/{detail['digest']}"
    assert detail["summary"]["users"]["alice"]["tokens"] == {"laptop": {"expires": None, "expired": False}}
    assert _entries(BASE, first) == []


def test_a_new_approver_in_prod_is_an_access_change() -> None:
    data = copy.deepcopy(BASE)
    data["environments"]["prod"]["approvers"] = ["alice", "carol"]
    data["users"].append({"name": "carol"})
    config, access = _changed(data)
    assert config.detail["changes"]["environments"] == {"changed": [{"name": "prod", "fields": ["approvers"]}]}
    assert config.detail["changes"]["users"] == {"added": ["carol"]}
    assert access == [
        {
            "change": "approver.added",
            "environment": "prod",
            "approver": "carol",
            "file": "tocsin.yaml",
            "digest": config.detail["digest"],
        }
    ]
    entries = _entries(data, _entries(BASE))
    assert [e.key for e in entries] == [
        f"config/7/{config.detail['digest']}",
        f"access/7/{config.detail['digest']}/1",
    ]
    assert entries[1].object == "environments/prod" and entries[1].actor is None


def test_a_role_granted_and_revoked() -> None:
    data = copy.deepcopy(BASE)
    data["users"][0]["roles"] = ["responder", "approver:prod"]
    data["users"][1]["roles"] = []
    data["oidc"][0]["roles"] = ["builder", "deployer:staging"]
    _, access = _changed(data)
    assert [(a["change"], a.get("user") or a.get("oidc"), a["role"]) for a in access] == [
        ("role.granted", "alice", "approver:prod"),
        ("role.revoked", "bob", "deployer:prod"),
        ("role.granted", "ci-payments", "deployer:staging"),
    ]


def test_tokens_added_removed_and_expiring() -> None:
    data = copy.deepcopy(BASE)
    data["users"][0]["tokens"] = [{"id": "ci", "sha256": HASH_B, "expires": "2026-12-01"}]
    _, access = _changed(data)
    assert [(a["change"], a["user"], a["token"]) for a in access] == [
        ("token.added", "alice", "ci"),
        ("token.removed", "alice", "laptop"),
    ]
    assert access[0]["expires"] == "2026-12-01"
    later = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
    before = _entries(data, _entries(BASE))
    after = _entries(data, before, seq=9, now=later)
    assert [e.detail["change"] for e in after[1:]] == ["token.expired"]
    assert after[0].detail["changes"]["users"] == {"changed": [{"name": "alice", "fields": ["tokens"]}]}


def test_a_receiver_change_is_a_config_change_only() -> None:
    data = copy.deepcopy(BASE)
    data["receivers"][0]["channels"] = ["ci", "literal"]
    data["route"]["routes"][0]["receiver"] = "builds"
    config, access = _changed(data)
    assert access == []
    assert config.detail["changes"] == {
        "receivers": {"changed": [{"name": "builds", "fields": ["settings"]}]},
        "routes": {"changed": [{"name": "route.routes[0]", "fields": ["receiver"]}]},
    }


def test_a_channel_setting_change_changes_the_digest() -> None:
    data = copy.deepcopy(BASE)
    data["channels"]["ci"]["channel"] = "#ci-builds"
    config, access = _changed(data)
    assert access == [] and config.detail["changes"] == {
        "channels": {"changed": [{"name": "ci", "fields": ["settings"]}]}
    }


def test_going_back_to_an_earlier_config_is_recorded_again() -> None:
    first = _entries(BASE)
    data = copy.deepcopy(BASE)
    data["users"][1]["roles"] = ["deployer:prod", "admin"]
    second = _entries(data, first, seq=1)
    back = _entries(BASE, second, seq=2)
    assert back and back[0].key != first[0].key and back[0].detail["digest"] == first[0].detail["digest"]
    assert [e.detail["change"] for e in back[1:]] == ["role.revoked"]


def test_secrets_and_token_hashes_never_appear() -> None:
    data = copy.deepcopy(BASE)
    data["environments"]["prod"]["approvers"] = ["bob", "alice"]
    data["users"][0]["tokens"].append({"id": "ci", "sha256": HASH_B})
    entries = _entries(data, _entries(BASE)) + _entries(BASE)
    text = json.dumps([e.model_dump(mode="json") for e in entries])
    view = json.dumps(config_view(_config(BASE), NOW.date()))
    for secret in (SLACK_TOKEN, HOOK_SECRET, "s3cr3t", "abc123secret456", "AbCdEfSeCrEt", HASH_A, HASH_B):
        assert secret not in text and secret not in view, secret
    assert "${SLACK_BOT_TOKEN}" in view, "an ${ENV} reference names a variable and is kept"
    assert "https://discord.com/" in view


def test_digest_ignores_order_of_keys_only() -> None:
    a = config_view(_config(BASE), NOW.date())
    b = config_view(_config(json.loads(json.dumps(BASE, sort_keys=True))), NOW.date())
    assert config_digest(a) == config_digest(b)


def test_a_remapped_slack_id_is_an_access_change() -> None:
    data = copy.deepcopy(BASE)
    data["users"][0]["slack"] = "U0NEWPERSON"
    _, access = _changed(data)
    assert [(a["change"], a["user"], a["handles"]) for a in access] == [
        ("handles.changed", "alice", {"slack": {"from": None, "to": "U0NEWPERSON"}})
    ]
