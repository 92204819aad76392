"""The ``jira`` channel: one Jira issue per incident (or per plain notification).

Settings: ``url`` (``https://your-site.atlassian.net`` or a Data Center base URL),
``user`` (the account email on Cloud), ``token`` (an API token; basic auth
``user:token``), ``project`` (key, e.g. ``OPS``), ``issue_type`` (default ``Task``),
``labels`` (extra labels, optional), ``resolve_transition`` (optional: the name of the
workflow transition to run on resolve, e.g. ``Done``), ``timeout``.

Why REST **v2**: v2 takes ``description`` and comment bodies as plain text / wiki
markup, which Tocsin renders directly; v3 requires Atlassian Document Format (a JSON
tree) for the same fields. v2 is served by Jira Cloud and Data Center alike.

Idempotency: each issue carries the labels ``tocsin`` and
``tocsin-<sha1(dedup_key or idempotency_key)[:12]>``. Before creating, the channel
searches ``project = KEY AND labels = "tocsin-<hash>"``; a not-done issue found there is
the one this send (or an earlier send of the same incident) created, and its key is
returned. Search uses ``GET /rest/api/2/search/jql`` (Jira Cloud's current endpoint; the
old ``/rest/api/2/search`` answers ``410 Gone`` on Cloud) and falls back to
``/rest/api/2/search`` where ``/search/jql`` does not exist (Data Center).

Lifecycle: ``trigger``/``notify`` create (or find) the issue; ``acknowledge`` and
``resolve`` add a comment to it (a retry first looks for the send's ``tocsin ref`` in the
comments). Transitions are workflow-specific (every project names its statuses and
transitions differently), so resolve only comments unless ``resolve_transition`` names
the transition to run; it is skipped when the issue no longer offers it (already done).

At-least-once corners: Jira Cloud's search is eventually consistent, so a retry within
about a second of a create whose answer was lost can miss the new issue and create a
second one with the same label (later sends and resolves then use the newest). A label
only reused after its issue is done (a re-fired incident with the same dedup key) opens
a new issue.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Literal

import httpx

from activities.channels.base import (
    Channel,
    ChannelDeps,
    ChannelError,
    SendContext,
    Sent,
    json_object,
    parse_retry_after,
)
from activities.channels.render import trim
from workflows.models import Message

__all__ = ["JiraChannel", "issue_label", "send_ref", "render_wiki", "wiki_escape"]

SUMMARY_LIMIT = 255
DESCRIPTION_LIMIT = 32_000
_WIKI_SPECIAL = set("\\{}[]|*_+^~!#-?")


def issue_label(key: str) -> str:
    """The label that marks the issue of ``key`` (a dedup key or idempotency key)."""
    return "tocsin-" + hashlib.sha1(key.encode("utf-8")).hexdigest()[:12]


def send_ref(idempotency_key: str) -> str:
    """The reference a comment carries so a retry can find it."""
    return "tocsin ref " + hashlib.sha1(idempotency_key.encode("utf-8")).hexdigest()[:12]


def wiki_escape(text: str) -> str:
    """Escape Jira wiki markup so user text shows literally."""
    return "".join("\\" + ch if ch in _WIKI_SPECIAL else ch for ch in text)


def _cell(text: str) -> str:
    return wiki_escape(" ".join(text.split())) or " "


def render_wiki(message: Message, *, heading: str | None = None, ref: str | None = None) -> str:
    """A description or comment in Jira wiki markup: text, a fields table, links, footer."""
    lines: list[str] = []
    if heading:
        lines += [f"h3. {wiki_escape(heading)}", ""]
    lines.append(f"*Severity:* {message.severity}")
    if message.text:
        lines += ["", wiki_escape(message.text)]
    if message.fields:
        lines += ["", "||Field||Value||"]
        lines += [f"|{_cell(f.title)}|{_cell(f.value)}|" for f in message.fields]
    links = [
        f"[{_cell(link.text or link.url).replace(chr(92) + '|', '/')}|{link.url}]"
        for link in message.links
        if link.url.lower().startswith(("http://", "https://")) and not set(link.url) & set("|[] ")
    ]
    if links:
        lines += ["", " • ".join(links)]
    footer = "Sent by Tocsin" + (f" from {wiki_escape(message.source)}" if message.source else "")
    if ref:
        footer += f" ({ref})"
    lines += ["", "----", f"_{footer}_"]
    text = "\n".join(lines)
    return text if len(text) <= DESCRIPTION_LIMIT else text[: DESCRIPTION_LIMIT - 20] + "\n…(truncated)"


class JiraChannel(Channel):
    """Opens, comments on and (optionally) transitions Jira issues through REST v2."""

    type = "jira"
    required = ("url", "user", "token", "project")

    def __init__(self, name: str, settings: Mapping[str, Any], deps: ChannelDeps):
        super().__init__(name, settings, deps)
        self.base = str(self.settings["url"]).rstrip("/")
        self.project = str(self.settings["project"]).strip()
        self.issue_type = str(self.settings.get("issue_type") or "Task")
        self._timeout = float(self.settings.get("timeout", 10))
        self._auth = httpx.BasicAuth(str(self.settings["user"]), str(self.settings["token"]))
        extra = self.settings.get("labels") or []
        self._extra_labels = [str(x).replace(" ", "-") for x in ([extra] if isinstance(extra, str) else extra)]
        self._search_path = "/rest/api/2/search/jql"

    def pace_key(self) -> str:
        return f"jira:{self.base}"

    # ------------------------------------------------------------------ HTTP

    async def _request(
        self,
        verb: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        ok_missing: bool = False,
    ) -> httpx.Response:
        what = f"jira {verb} {path}"
        response = await self.request(
            verb,
            f"{self.base}{path}",
            what,
            json=json,
            params=params,
            auth=self._auth,
            timeout=self._timeout,
            headers={"Accept": "application/json", "User-Agent": "tocsin-notifier"},
        )
        if ok_missing and response.status_code in (404, 410):
            return response
        if not 200 <= response.status_code < 300:
            raise self._error(response, what)
        return response

    @staticmethod
    def _error(response: httpx.Response, what: str) -> ChannelError:
        status = response.status_code
        data = json_object(response)
        reasons = [str(m) for m in data.get("errorMessages") or []]
        errors = data.get("errors")
        if isinstance(errors, dict):
            reasons += [f"{field}: {why}" for field, why in errors.items()]
        if data.get("message"):
            reasons.append(str(data["message"]))
        why = "; ".join(reasons) or response.text[:300] or response.reason_phrase
        if status == 429:
            return ChannelError(
                f"{what}: rate limited (429)",
                retryable=True,
                retry_after=parse_retry_after(response.headers.get("retry-after")),
                kind="RateLimited",
            )
        if status >= 500 or status == 408:
            return ChannelError(f"{what}: server error {status}: {why}", retryable=True)
        if status in (401, 403):
            return ChannelError(
                f"{what}: bad credentials or no permission ({status}): {why}", retryable=False, kind="BadCredentials"
            )
        return ChannelError(f"{what}: rejected ({status}): {why}", retryable=False, kind="JiraRejected")

    # ------------------------------------------------------------------ operations

    async def _search(self, label: str) -> list[dict[str, Any]]:
        """Issues of this project carrying ``label``, newest first."""
        jql = f'project = "{self.project}" AND labels = "{label}" ORDER BY created DESC'
        params = {"jql": jql, "fields": "summary,status,created", "maxResults": 20}
        response = await self._request("GET", self._search_path, params=params, ok_missing=True)
        if response.status_code in (404, 410) and self._search_path.endswith("/jql"):
            self._search_path = "/rest/api/2/search"  # Jira Data Center / Server
            response = await self._request("GET", self._search_path, params=params)
        elif response.status_code in (404, 410):
            raise self._error(response, f"jira GET {self._search_path}")
        issues = response.json().get("issues") or []
        return [issue for issue in issues if isinstance(issue, dict) and issue.get("key")]

    @staticmethod
    def _done(issue: dict[str, Any]) -> bool:
        status = (issue.get("fields") or {}).get("status") or {}
        return ((status.get("statusCategory") or {}).get("key") or "") == "done"

    def _sent(self, key: str, duplicate: bool = False) -> Sent:
        return Sent(message_id=key, url=f"{self.base}/browse/{key}", duplicate=duplicate)

    async def _create(self, message: Message, label: str) -> Sent:
        summary = trim(" ".join(message.title.split()) or "(no title)", SUMMARY_LIMIT)
        fields = {
            "project": {"key": self.project},
            "summary": summary,
            "description": render_wiki(message),
            "issuetype": {"name": self.issue_type},
            "labels": ["tocsin", label, *self._extra_labels],
        }
        response = await self._request("POST", "/rest/api/2/issue", json={"fields": fields})
        key = str(response.json().get("key") or "")
        if not key:
            raise ChannelError(
                "jira POST /rest/api/2/issue: no key in the answer", retryable=False, kind="JiraRejected"
            )
        return self._sent(key)

    async def _has_comment(self, key: str, ref: str) -> bool:
        response = await self._request(
            "GET", f"/rest/api/2/issue/{key}/comment", params={"maxResults": 100, "orderBy": "-created"}
        )
        return any(ref in str(c.get("body") or "") for c in response.json().get("comments") or [])

    async def _transition(self, key: str, name: str) -> None:
        response = await self._request("GET", f"/rest/api/2/issue/{key}/transitions")
        for transition in response.json().get("transitions") or []:
            names = {
                str(transition.get("name") or "").lower(),
                str((transition.get("to") or {}).get("name") or "").lower(),
            }
            if name.lower() in names:
                await self._request(
                    "POST", f"/rest/api/2/issue/{key}/transitions", json={"transition": {"id": str(transition["id"])}}
                )
                return
        # Not offered: the issue is already there (a retry) or the workflow has no such transition.

    async def _follow_up(
        self,
        message: Message,
        idempotency_key: str,
        attempt: int,
        label: str,
        action: Literal["acknowledge", "resolve"],
    ) -> Sent:
        issues = await self._search(label)
        if not issues:
            return Sent(duplicate=True)  # nothing to acknowledge or resolve
        open_issues = [i for i in issues if not self._done(i)]
        issue = (open_issues or issues)[0]
        key = str(issue["key"])
        if not open_issues and action == "acknowledge":
            return self._sent(key, duplicate=True)
        ref = send_ref(idempotency_key)
        already = attempt > 1 and await self._has_comment(key, ref)
        if not already:
            heading = ("Resolved: " if action == "resolve" else "Acknowledged: ") + " ".join(message.title.split())
            await self._request(
                "POST",
                f"/rest/api/2/issue/{key}/comment",
                json={"body": render_wiki(message, heading=heading, ref=ref)},
            )
        transition = self.settings.get("resolve_transition")
        if action == "resolve" and transition and open_issues:
            await self._transition(key, str(transition))
        return self._sent(key, duplicate=already)

    async def send(self, message: Message, idempotency_key: str, attempt: int, ctx: SendContext | None = None) -> Sent:
        """Open (or find) the issue, or comment on it, as ``ctx.action`` asks.

        Args:
            message: what to report.
            idempotency_key: stable across retries; keys the issue when there is no dedup key.
            attempt: Temporal's attempt number; from 2 on, comments are looked for first.
            ctx: ``action`` and ``dedup_key`` (one issue per incident).

        Returns:
            ``Sent`` with the issue key and its ``/browse/`` URL.

        Raises:
            ChannelError: retryable for 429, 5xx, timeouts and connection errors.
        """
        ctx = ctx or SendContext(attempt=attempt)
        label = issue_label(ctx.dedup_key or idempotency_key)
        if ctx.action in ("acknowledge", "resolve"):
            return await self._follow_up(message, idempotency_key, attempt, label, ctx.action)
        for issue in await self._search(label):
            if not self._done(issue):
                return self._sent(str(issue["key"]), duplicate=True)
        return await self._create(message, label)
