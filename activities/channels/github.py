"""The ``github`` channel: commit statuses, sticky PR comments and tracking issues.

Settings: ``token`` (needs ``repo:status`` and issues read/write, or a fine-grained token
with "Commit statuses" and "Issues"/"Pull requests" write), ``repo`` (``owner/name``;
the message's ``labels.repo`` is deliberately not used: the channel writes only where
it was configured to), ``api_url`` (default ``https://api.github.com``; GitHub Enterprise
Server: ``https://HOST/api/v3``), ``labels`` (extra issue labels, optional), ``timeout``.

What one send does, by context:

* ``ctx.action`` is ``trigger``/``acknowledge``/``resolve`` — a **tracking issue** for
  ``ctx.dedup_key``: trigger finds the open issue whose body carries
  ``<!-- tocsin:{dedup_key} -->`` (listing open issues labelled ``tocsin``) and comments
  on it, or opens it; acknowledge comments; resolve comments and closes it
  (``state_reason: completed``). Nothing open to acknowledge/resolve: no-op, ``duplicate``.
  A build's issue (``labels.kind == "build"``: the CI failure tracking issue) also gets the label
  ``tocsin-ci``, keeps the message's title as given, and its comments say "Failed again" / "Fixed".
* otherwise, with ``labels.commit`` (a full SHA; or a ``Commit`` field holding one) and
  ``labels.kind == "build"`` — **commit statuses**, one per context (idempotent: the latest
  status per context wins): ``tocsin/<workflow>`` (the build, state from ``labels.status``);
  ``tocsin/tests`` when the message has a ``Tests`` field (failure when any test failed,
  description "120 passed, 2 failed"); ``tocsin/coverage`` when it has a ``Coverage`` field
  (failure when ``labels.coverage_state`` is ``dropped`` or ``below_min``, description
  "81.2% (−1.3)");
* and/or with ``labels.pr`` — one **sticky comment** per pull request and per ``source``
  workflow, found by ``<!-- tocsin:sticky:{source} -->`` and edited in place; a build's comment
  is a status table (:func:`render_status_table`: build, tests, coverage and its delta, security
  findings, flaky tests, duration);
* otherwise (a plain notify) — an **issue** marked with the idempotency key, so a retry
  finds it instead of opening a second one.

Every issue and comment body also carries ``<!-- tocsin-send:{idempotency_key} -->``; a
retry (``attempt > 1``) looks for it before commenting again.

At-least-once corners: markers are found by listing (up to 10 pages of 100 open issues or
comments); a repository with more open ``tocsin`` issues than that could get a duplicate.
Two workers racing on the *first* send of the same sticky comment or tracking issue (not a
retry: Temporal runs one attempt at a time) could both create one.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator, Mapping
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
from activities.channels.github_render import (
    ALERT_PREFIX,
    BUILD_PREFIX,
    FULL_SHA,
    STATUS_STATE,
    TITLE_LIMIT,
    commit_statuses,
    marker,
    render_markdown,
    render_status_table,
    run_url,
    send_marker,
    sticky_marker,
)
from activities.channels.render import trim
from workflows.models import Message

__all__ = [
    "GitHubChannel",
    "render_markdown",
    "render_status_table",
    "commit_statuses",
    "marker",
    "send_marker",
    "sticky_marker",
    "STATUS_STATE",
    "CI_LABEL",
]

DEFAULT_API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
ISSUE_LABEL = "tocsin"
CI_LABEL = "tocsin-ci"
"""Also on a build's tracking issue (the CI failure alerts of one pipeline)."""
MAX_PAGES = 10


class GitHubChannel(Channel):
    """Reports to one GitHub repository: commit statuses, sticky PR comments, issues."""

    type = "github"
    required = ("token", "repo")
    rate_per_second = 1.0  # GitHub: at most ~80 content-creating requests a minute per user
    burst = 10

    def __init__(self, name: str, settings: Mapping[str, Any], deps: ChannelDeps):
        super().__init__(name, settings, deps)
        repo = str(self.settings["repo"]).strip().strip("/")
        if repo.count("/") != 1 or not all(repo.split("/")):
            raise ChannelError(
                f"channel '{name}' (github): repo must be owner/name, not {repo!r}",
                retryable=False,
                kind="ChannelMisconfigured",
            )
        self.repo = repo
        self.api_url = str(self.settings.get("api_url") or DEFAULT_API_URL).rstrip("/")
        self._timeout = float(self.settings.get("timeout", 10))
        extra = self.settings.get("labels") or []
        self._labels = [ISSUE_LABEL] + [
            str(x) for x in ([extra] if isinstance(extra, str) else extra) if str(x) != ISSUE_LABEL
        ]
        self._headers = {
            "Authorization": f"Bearer {self.settings['token']}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": "tocsin-notifier",
        }

    def pace_key(self) -> str:
        # Secondary rate limits count per user (token), not per repository.
        token = hashlib.sha256(str(self.settings["token"]).encode()).hexdigest()[:12]
        return f"github:{self.api_url}:{token}"

    # ------------------------------------------------------------------ HTTP

    async def _request(
        self, verb: str, path: str, *, json: Any = None, params: Mapping[str, Any] | None = None, url: str | None = None
    ) -> httpx.Response:
        what = f"github {verb} {path}"
        response = await self.request(
            verb,
            url or f"{self.api_url}{path}",
            what,
            json=json,
            params=params,
            headers=self._headers,
            timeout=self._timeout,
        )
        if not 200 <= response.status_code < 300:
            raise self._error(response, what)
        return response

    @staticmethod
    def _error(response: httpx.Response, what: str) -> ChannelError:
        status = response.status_code
        data = json_object(response)
        message = str(data.get("message") or "")
        details = []
        for err in data.get("errors") or []:
            if isinstance(err, dict):
                details.append(
                    str(
                        err.get("message")
                        or " ".join(str(err.get(k)) for k in ("resource", "field", "code") if err.get(k))
                    )
                )
            elif err:
                details.append(str(err))
        if details:
            message = f"{message} ({'; '.join(details)})" if message else "; ".join(details)
        message = message or response.text[:300] or response.reason_phrase
        headers = response.headers
        if status == 401:
            return ChannelError(f"{what}: bad credentials (401): {message}", retryable=False, kind="BadCredentials")
        if status in (403, 429):
            remaining = headers.get("x-ratelimit-remaining")
            retry_after = parse_retry_after(headers.get("retry-after"))
            limited = status == 429 or remaining == "0" or retry_after is not None or "rate limit" in message.lower()
            if limited:
                if retry_after is None and remaining == "0":
                    try:
                        retry_after = max(0.0, float(headers.get("x-ratelimit-reset", "")) - time.time())
                    except ValueError:
                        retry_after = None
                if retry_after is None:
                    retry_after = 60.0  # secondary limit without a hint: GitHub asks for at least a minute
                return ChannelError(
                    f"{what}: rate limited ({status}): {message}",
                    retryable=True,
                    retry_after=retry_after,
                    kind="RateLimited",
                )
            return ChannelError(f"{what}: forbidden (403): {message}", retryable=False, kind="BadCredentials")
        if status >= 500 or status == 408:
            return ChannelError(f"{what}: server error {status}: {message}", retryable=True)
        return ChannelError(f"{what}: rejected ({status}): {message}", retryable=False, kind="GitHubRejected")

    async def _pages(self, path: str, params: dict[str, Any]) -> AsyncIterator[list[dict[str, Any]]]:
        """Pages of a list endpoint, following ``Link: rel="next"`` (at most :data:`MAX_PAGES`)."""
        response = await self._request("GET", path, params={**params, "per_page": 100})
        for page in range(MAX_PAGES):
            items = response.json()
            yield items if isinstance(items, list) else []
            nxt = response.links.get("next", {}).get("url")
            if not nxt or page == MAX_PAGES - 1:
                return
            response = await self._request("GET", path, url=nxt)

    # ------------------------------------------------------------------ lookups

    async def _find_open_issue(self, mark: str) -> dict[str, Any] | None:
        async for items in self._pages(
            f"/repos/{self.repo}/issues",
            {"state": "open", "labels": ISSUE_LABEL, "sort": "created", "direction": "desc"},
        ):
            for issue in items:
                if "pull_request" not in issue and mark in (issue.get("body") or ""):
                    return issue
        return None

    async def _find_comment(self, number: int | str, mark: str) -> dict[str, Any] | None:
        async for items in self._pages(f"/repos/{self.repo}/issues/{number}/comments", {}):
            for comment in items:
                if mark in (comment.get("body") or ""):
                    return comment
        return None

    # ------------------------------------------------------------------ actions

    async def _comment(self, number: int | str, body: str) -> dict[str, Any]:
        response = await self._request("POST", f"/repos/{self.repo}/issues/{number}/comments", json={"body": body})
        data: dict[str, Any] = response.json()
        return data

    async def _open_issue(self, message: Message, body: str, labels: list[str] | None = None) -> Sent:
        title = trim(" ".join(message.title.split()) or "(no title)", TITLE_LIMIT)
        response = await self._request(
            "POST", f"/repos/{self.repo}/issues", json={"title": title, "body": body, "labels": labels or self._labels}
        )
        issue = response.json()
        return Sent(message_id=str(issue.get("number")), url=issue.get("html_url"))

    async def _commit_statuses(self, message: Message, sha: str) -> list[Sent]:
        """One status per context (:func:`commit_statuses`), all with the run's link."""
        url = run_url(message)
        sent = []
        for payload in commit_statuses(message):
            body: dict[str, Any] = {**payload, **({"target_url": url} if url else {})}
            response = await self._request("POST", f"/repos/{self.repo}/statuses/{sha}", json=body)
            data = response.json()
            sent.append(Sent(message_id=str(data.get("id", "")) or None, url=url))
        return sent

    async def _sticky(self, message: Message, pr: str, idempotency_key: str) -> Sent:
        mark = sticky_marker(message.source)
        render = render_status_table if message.labels.get("kind") == "build" else render_markdown
        body = render(message, markers=(mark, send_marker(idempotency_key)))
        existing = await self._find_comment(pr, mark)
        if existing is not None:
            if existing.get("body") == body:
                return Sent(message_id=str(existing.get("id")), url=existing.get("html_url"), duplicate=True)
            response = await self._request(
                "PATCH", f"/repos/{self.repo}/issues/comments/{existing['id']}", json={"body": body}
            )
            data = response.json()
            return Sent(message_id=str(data.get("id", existing["id"])), url=data.get("html_url"))
        data = await self._comment(pr, body)
        return Sent(message_id=str(data.get("id")), url=data.get("html_url"))

    async def _tracking(
        self,
        message: Message,
        idempotency_key: str,
        attempt: int,
        action: Literal["trigger", "acknowledge", "resolve"],
        dedup_key: str,
    ) -> Sent:
        mark, sent_mark = marker(dedup_key), send_marker(idempotency_key)
        build = message.labels.get("kind") == "build"
        issue = await self._find_open_issue(mark)
        if issue is None:
            if action != "trigger":
                return Sent(duplicate=True)  # nothing open to acknowledge or resolve
            labels = [*self._labels[:1], CI_LABEL, *[x for x in self._labels[1:] if x != CI_LABEL]]
            body = render_markdown(message, markers=(mark, sent_mark))
            return await self._open_issue(message, body, labels if build else None)
        number = issue["number"]
        found = Sent(message_id=str(number), url=issue.get("html_url"))
        if sent_mark in (issue.get("body") or ""):
            found.duplicate = True  # a retried trigger whose issue was opened by the first attempt
            return found
        already = attempt > 1 and await self._find_comment(number, sent_mark) is not None
        if not already:
            prefixes = BUILD_PREFIX if build else ALERT_PREFIX
            prefix = prefixes[action]
            shown = message.model_copy(update={"title": f"{prefix}: {message.title}"})
            await self._comment(number, render_markdown(shown, markers=(sent_mark,)))
        if action == "resolve":
            await self._request(
                "PATCH", f"/repos/{self.repo}/issues/{number}", json={"state": "closed", "state_reason": "completed"}
            )
        found.duplicate = already and action != "resolve"
        return found

    @staticmethod
    def _commit_of(message: Message) -> str | None:
        sha = (message.labels.get("commit") or "").strip()
        if not sha:
            sha = next((f.value.strip() for f in message.fields if f.title.lower() == "commit"), "")
        return sha if FULL_SHA.match(sha) else None

    @staticmethod
    def _pr_of(message: Message) -> str | None:
        pr = (message.labels.get("pr") or "").strip().lstrip("#")
        return pr if pr.isdigit() and int(pr) > 0 else None

    async def send(self, message: Message, idempotency_key: str, attempt: int, ctx: SendContext | None = None) -> Sent:
        """Report ``message`` on GitHub the way its context asks (see the module docstring).

        Args:
            message: what to report; ``labels`` ``commit``, ``pr``, ``kind``, ``status``,
                ``workflow`` and ``url`` choose and shape the report.
            idempotency_key: stable across retries; marks what this send created.
            attempt: Temporal's attempt number; from 2 on, comments are looked for first.
            ctx: ``action`` and ``dedup_key`` for tracking issues.

        Returns:
            ``Sent`` with the issue number, comment id or status id, and its web URL.

        Raises:
            ChannelError: retryable for 429/rate-limited 403, 5xx, timeouts and connection errors.
        """
        ctx = ctx or SendContext(attempt=attempt)
        if ctx.action in ("trigger", "acknowledge", "resolve"):
            return await self._tracking(message, idempotency_key, attempt, ctx.action, ctx.dedup_key or idempotency_key)
        results: list[Sent] = []
        sha = self._commit_of(message)
        if sha and message.labels.get("kind") == "build":
            results += await self._commit_statuses(message, sha)
        pr = self._pr_of(message)
        if pr:
            return await self._sticky(message, pr, idempotency_key)
        if results:
            return results[0]
        mark = marker(idempotency_key)
        if attempt > 1:
            issue = await self._find_open_issue(mark)
            if issue is not None:
                return Sent(message_id=str(issue["number"]), url=issue.get("html_url"), duplicate=True)
        return await self._open_issue(message, render_markdown(message, markers=(mark,)))
