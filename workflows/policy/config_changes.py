"""What changed between two configs, for the audit journal (pure: no I/O, no Temporal, no clock).

A worker journals its config at start and on every reload: :func:`config_view` strips the config
of everything secret (token hashes, channel secrets, hook header values, credentials in URLs),
:func:`config_digest` hashes that view, and :func:`config_summary` keeps the part an auditor reads
(receivers, routes per path, environments, users, roles, token ids and expiry, OIDC identities,
a digest per other section). :func:`diff_summaries` compares the last journaled summary with
the current one; :func:`config_change_entries` turns a change into one ``config.changed`` entry
and one ``access.changed`` entry per access change (a user or OIDC identity gains or loses a
role or a group, an approver is added or removed, a token is added, removed, re-dated or
expires, a user's Slack id, GitHub login or email changes, an OIDC identity's issuer, audience
or claims change, ``auth`` changes).

Nothing secret survives: a value is kept when it is wholly a ``${ENV}`` reference (it names a
variable, not a secret), hidden when its key names a secret (``token``, ``password``,
``api_key``…) or a webhook URL (host kept), and passed through the redaction rules otherwise.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from urllib.parse import urlsplit

from workflows.audit import JournalEntry
from workflows.config import Config
from workflows.policy.redact import REDACTED, is_secret_name, redactor_for

__all__ = [
    "ConfigDiff",
    "config_view",
    "config_digest",
    "config_summary",
    "diff_summaries",
    "config_change_entries",
]

_REFERENCE = re.compile(r"^(?:\$\{[A-Za-z_][A-Za-z0-9_]*(?::-[^}]*)?\})+$")
_URL_KEY = re.compile(r"(?i)^(?:.*[_-])?(?:url|webhook|webhook[_-]url)$")
_HANDLES = ("slack", "github", "email")
_SECTIONS = ("channels", "receivers", "routes", "environments", "users", "oidc", "settings")
_OTHER_KEYS = (
    "inhibit_rules",
    "time_intervals",
    "escalation_policies",
    "pipelines",
    "redact_patterns",
    "rollback_triggers",
    "dead_letter",
    "auth",
    "audit",
)


def _sha(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _host_only(url: str) -> str:
    parts = urlsplit(url)
    if not parts.scheme or not parts.hostname:
        return REDACTED
    return f"{parts.scheme}://{parts.hostname}" + ("/" + REDACTED if parts.path.strip("/") or parts.query else "")


def _scrub(key: str, value: Any, redact: Any) -> Any:
    """A setting's value with nothing secret left (``redact`` applies the redaction rules to text)."""
    if isinstance(value, Mapping):
        return {str(k): _scrub(str(k), v, redact) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(key, v, redact) for v in value]
    if not isinstance(value, str) or not value:
        return value
    if _REFERENCE.match(value):
        return value
    if is_secret_name(key):
        return REDACTED
    if _URL_KEY.match(key):
        return _host_only(value)
    return redact(value)


def config_view(config: Config, today: date) -> dict[str, Any]:
    """The config as the journal may see it: :meth:`Config.snapshot` plus scrubbed channel settings and token ids.

    Args:
        config: the config.
        today: the day token expiry is judged by (UTC).
    """
    redactor = redactor_for(config.redact_patterns)
    view = config.snapshot().model_dump(mode="json", by_alias=True)
    view["channels"] = {
        name: {"type": ch.type, **_scrub("settings", ch.settings(), redactor.value)}
        for name, ch in config.channels.items()
    }
    tokens = {user.name: user.tokens for user in config.users}
    for user in view["users"]:
        user["tokens"] = [
            {
                "id": t.id,
                "expires": t.expires.isoformat() if t.expires else None,
                "expired": t.expires is not None and t.expires < today,
            }
            for t in tokens.get(user["name"], [])
        ]
    for env in view["environments"].values():
        hooks = env.get("hooks") or {}
        for name in ("deploy", "rollback"):
            hook = hooks.get(name)
            if hook:
                hook["url"] = redactor.url(hook["url"]) if not _REFERENCE.match(hook["url"]) else hook["url"]
                hook["headers"] = {
                    k: (REDACTED if v and not _REFERENCE.match(v) else v) for k, v in hook["headers"].items()
                }
        hooks["health"] = [redactor.url(u) for u in hooks.get("health", [])]
        analysis = (env.get("canary") or {}).get("analysis")
        if analysis:
            analysis["prometheus_url"] = redactor.url(analysis["prometheus_url"])
    return view


def config_digest(view: Mapping[str, Any]) -> str:
    """The sha256 of the stripped view (canonical JSON): equal configs, equal digests."""
    return _sha(view)


def _routes(node: Mapping[str, Any], path: str, out: dict[str, Any]) -> None:
    own = {k: v for k, v in node.items() if k != "routes"}
    out[path] = {
        "receiver": node.get("receiver"),
        "matchers": [*node.get("matchers", []), *(f"{k}={v!r}" for k, v in (node.get("match") or {}).items())],
        "sha256": _sha(own),
    }
    for i, child in enumerate(node.get("routes") or []):
        _routes(child, f"{path}.routes[{i}]", out)


def _env_summary(env: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("approvers", "required_approvals", "four_eyes", "production", "freeze", "receiver")
    return {**{k: env.get(k) for k in keys}, "sha256": _sha({k: v for k, v in env.items() if k not in keys})}


def config_summary(view: Mapping[str, Any]) -> dict[str, Any]:
    """What the journal keeps of a config to compare the next one with (no secrets: it comes from the view)."""
    routes: dict[str, Any] = {}
    _routes(view["route"], "route", routes)
    return {
        "channels": {name: {"type": ch["type"], "sha256": _sha(ch)} for name, ch in view["channels"].items()},
        "receivers": {r["name"]: {"sha256": _sha(r)} for r in view["receivers"]},
        "routes": routes,
        "environments": {name: _env_summary(env) for name, env in view["environments"].items()},
        "users": {
            u["name"]: {
                "roles": sorted(u["roles"]),
                "groups": sorted(u["groups"]),
                "tokens": {t["id"]: {"expires": t["expires"], "expired": t["expired"]} for t in u["tokens"]},
                "handles": {k: u.get(k) for k in _HANDLES},
            }
            for u in view["users"]
        },
        "oidc": {
            o["as"]: {
                "issuer": o["issuer"],
                "audience": o["audience"],
                "claims": o["claims"],
                "roles": sorted(o["roles"]),
            }
            for o in view["oidc"]
        },
        "settings": {key: _sha(view.get(key)) for key in _OTHER_KEYS},
    }


@dataclass
class ConfigDiff:
    """The difference between two summaries.

    Attributes:
        changes: per section (``receivers``, ``routes``…), the names ``added``, ``removed`` and
            ``changed`` (with the ``fields`` that changed where known); sections without a change absent.
        access: one dict per access change, each with a ``change`` (``role.granted``,
            ``role.revoked``, ``group.joined``, ``group.left``, ``approver.added``,
            ``approver.removed``, ``token.added``, ``token.removed``, ``token.expired``,
            ``token.expiry_changed``, ``handles.changed`` (the Slack id, GitHub login or email that
            acts as a user), ``oidc.trust_changed``, ``auth.changed``) and its subject.
    """

    changes: dict[str, dict[str, Any]] = field(default_factory=dict)
    access: list[dict[str, Any]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.changes or self.access)


def _section(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    added = sorted(set(new) - set(old))
    removed = sorted(set(old) - set(new))
    changed = []
    for name in sorted(set(old) & set(new)):
        if old[name] != new[name]:
            a, b = old[name], new[name]
            fields = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k)) if isinstance(a, dict) else []
            changed.append({"name": name, "fields": [f for f in fields if f != "sha256"] or ["settings"]})
    out: dict[str, Any] = {}
    for key, value in (("added", added), ("removed", removed), ("changed", changed)):
        if value:
            out[key] = value
    return out


def _grants(kind: str, name: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Roles and groups gained and lost by one subject (an absent subject holds nothing)."""
    out: list[dict[str, Any]] = []
    for what, key in (("role", "roles"), ("group", "groups")):
        before, after = set(old.get(key, [])), set(new.get(key, []))
        gain, lose = ("granted", "revoked") if what == "role" else ("joined", "left")
        out += [{"change": f"{what}.{gain}", kind: name, what: r} for r in sorted(after - before)]
        out += [{"change": f"{what}.{lose}", kind: name, what: r} for r in sorted(before - after)]
    return out


def _token_changes(user: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for tid in sorted(set(old) | set(new)):
        a, b = old.get(tid), new.get(tid)
        base = {"user": user, "token": tid}
        if a is None and b is not None:
            out.append({"change": "token.added", **base, "expires": b["expires"]})
        elif b is None and a is not None:
            out.append({"change": "token.removed", **base})
        elif a is not None and b is not None and a["expires"] != b["expires"]:
            out.append({"change": "token.expiry_changed", **base, "from": a["expires"], "expires": b["expires"]})
        elif a is not None and b is not None and b["expired"] and not a["expired"]:
            out.append({"change": "token.expired", **base, "expires": b["expires"]})
    return out


def _access(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    old_users, new_users = old.get("users", {}), new.get("users", {})
    for name in sorted(set(old_users) | set(new_users)):
        a, b = old_users.get(name, {}), new_users.get(name, {})
        out += _grants("user", name, a, b)
        out += _token_changes(name, a.get("tokens", {}), b.get("tokens", {}))
        moved = {k: {"from": a["handles"].get(k), "to": b["handles"].get(k)} for k in _HANDLES if a and b}
        moved = {k: v for k, v in moved.items() if v["from"] != v["to"]}
        if moved:
            out.append({"change": "handles.changed", "user": name, "handles": moved})
    old_oidc, new_oidc = old.get("oidc", {}), new.get("oidc", {})
    for name in sorted(set(old_oidc) | set(new_oidc)):
        a, b = old_oidc.get(name, {}), new_oidc.get(name, {})
        out += _grants("oidc", name, a, b)
        trust = [k for k in ("issuer", "audience", "claims") if a and b and a.get(k) != b.get(k)]
        if trust:
            out.append({"change": "oidc.trust_changed", "oidc": name, "fields": trust})
    old_envs, new_envs = old.get("environments", {}), new.get("environments", {})
    for env in sorted(set(old_envs) | set(new_envs)):
        before = set(old_envs.get(env, {}).get("approvers") or [])
        after = set(new_envs.get(env, {}).get("approvers") or [])
        out += [{"change": "approver.added", "environment": env, "approver": n} for n in sorted(after - before)]
        out += [{"change": "approver.removed", "environment": env, "approver": n} for n in sorted(before - after)]
    old_auth, new_auth = old.get("settings", {}).get("auth"), new.get("settings", {}).get("auth")
    if old_auth != new_auth:
        out.append({"change": "auth.changed"})
    return out


def diff_summaries(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> ConfigDiff:
    """What changed from ``old`` (the last journaled summary; None: nothing journaled yet) to ``new``.

    With no ``old`` there is no diff to report: the first record is the baseline (its summary lists
    everyone's roles and tokens), so no access change is derived from it.
    """
    if old is None:
        return ConfigDiff()
    changes = {}
    for section in _SECTIONS:
        found = _section(old.get(section, {}), new.get(section, {}))
        if found:
            changes[section] = found
    return ConfigDiff(changes=changes, access=_access(old, new))


def _subject(change: Mapping[str, Any]) -> str:
    for kind in ("user", "oidc"):
        if kind in change:
            return f"{kind}/{change[kind]}"
    if "environment" in change:
        return f"environments/{change['environment']}"
    return "auth"


def config_change_entries(
    config: Config,
    *,
    file: str,
    now: datetime,
    last_seq: int | None,
    last_detail: Mapping[str, Any] | None,
) -> list[JournalEntry]:
    """The journal entries for ``config`` given the last ``config.changed`` record (none when it is unchanged).

    Keys are ``config/<last seq>/<digest>`` and ``access/<last seq>/<digest>/<n>``: several workers
    starting at once with the same config and the same last record produce the same keys, so the
    journal keeps one copy; going back to an earlier config is still a new record.

    Args:
        config: the config now in use.
        file: its file (``(built-in defaults)`` when there is none).
        now: when it was loaded.
        last_seq: the last ``config.changed`` record's sequence number (None: there is none).
        last_detail: that record's ``detail`` (its ``digest`` and ``summary``).
    """
    view = config_view(config, now.date())
    digest = config_digest(view)
    previous = dict(last_detail or {})
    if previous.get("digest") == digest:
        return []
    summary = config_summary(view)
    old_summary = previous.get("summary") if last_seq is not None else None
    diff = diff_summaries(old_summary if isinstance(old_summary, dict) else None, summary)
    since = last_seq if last_seq is not None else 0
    detail: dict[str, Any] = {
        "digest": digest,
        "previous_digest": previous.get("digest"),
        "file": file,
        "initial": last_seq is None,
        "changes": diff.changes,
        "access_changes": len(diff.access),
        "summary": summary,
    }
    entries = [
        JournalEntry(key=f"config/{since}/{digest}", time=now, action="config.changed", object=file, detail=detail)
    ]
    entries += [
        JournalEntry(
            key=f"access/{since}/{digest}/{n}",
            time=now,
            action="access.changed",
            object=_subject(change),
            detail={**change, "file": file, "digest": digest},
        )
        for n, change in enumerate(diff.access, start=1)
    ]
    return entries
