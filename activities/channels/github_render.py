"""Rendering for the ``github`` channel: Markdown bodies, hidden markers, a build's status table, commit statuses.

Pure functions of a :class:`~workflows.models.Message`; :mod:`activities.channels.github` sends what they make.
"""

from __future__ import annotations

import hashlib
import re

from activities.channels.render import trim
from workflows.models import Message

__all__ = [
    "render_markdown",
    "render_status_table",
    "commit_statuses",
    "marker",
    "send_marker",
    "sticky_marker",
    "STATUS_STATE",
    "BODY_LIMIT",
    "DESCRIPTION_LIMIT",
    "TITLE_LIMIT",
    "ALERT_PREFIX",
    "BUILD_PREFIX",
    "FULL_SHA",
    "run_url",
]

TITLE_LIMIT = 256
BODY_LIMIT = 65536
DESCRIPTION_LIMIT = 140

STATUS_STATE: dict[str, str] = {
    "success": "success",
    "failure": "failure",
    "cancelled": "error",
    "timed_out": "failure",
    "started": "pending",
}
"""``labels.status`` of a build event → GitHub commit status ``state``."""

_EMOJI = {"info": "ℹ️", "success": "✅", "warning": "⚠️", "error": "❌", "critical": "🚨"}
_SAFE_KEY = re.compile(r"^[A-Za-z0-9._:/|=@+,#\[\]()-]{1,200}$")
FULL_SHA = re.compile(r"^[0-9a-fA-F]{40}$|^[0-9a-fA-F]{64}$")
_MENTION = re.compile(r"(?<!\w)@([A-Za-z0-9][A-Za-z0-9-]*(?:/[A-Za-z0-9_.-]+)?)")


def _token(key: str) -> str:
    """``key`` as it appears inside an HTML comment (hashed when it could end the comment)."""
    if _SAFE_KEY.match(key) and "--" not in key:
        return key
    return "sha256-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:40]


def marker(key: str) -> str:
    """The hidden marker of the issue tracking ``key`` (a dedup key or, for plain notifies, the idempotency key)."""
    return f"<!-- tocsin:{_token(key)} -->"


def send_marker(idempotency_key: str) -> str:
    """The hidden marker of one send (found by a retry before it comments again)."""
    return f"<!-- tocsin-send:{_token(idempotency_key)} -->"


def sticky_marker(source: str) -> str:
    """The hidden marker of the sticky PR comment of one workflow."""
    return f"<!-- tocsin:sticky:{_token(source or 'tocsin')} -->"


def _quote_mention(match: re.Match[str]) -> str:
    """``@name`` as code, which GitHub never turns into a mention (or a team ping).

    After a backtick the user's own backticks decide what is code, and an unmatched one would
    leave the mention bare: there an HTML ``<code>`` element is used, whatever surrounds it.
    """
    if match.start() > 0 and match.string[match.start() - 1] == "`":
        return f"<code>{match.group(0)}</code>"
    return f"`{match.group(0)}`"


def _md(text: str) -> str:
    """User text made safe for GitHub Markdown: no raw HTML (so no fake markers), no @mentions."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MENTION.sub(_quote_mention, text)


def _cell(text: str) -> str:
    return _md(text).replace("|", "\\|").replace("\r", "").replace("\n", "<br>")


def _link(text: str, url: str) -> str:
    return f"[{_md(text).replace(']', '&#93;')}]({url.replace(' ', '%20').replace(')', '%29')})"


def _finish(lines: list[str], message: Message, footer: str, markers: tuple[str, ...]) -> str:
    """``lines`` with the footer (severity, ``footer``, source) and the markers, cut to GitHub's body limit."""
    footer = f"<sub>{message.severity} · {footer}"
    if message.source:
        footer += f" from `{message.source.replace('`', '')}`"
    lines = [*lines, "", footer + "</sub>"]
    tail = "\n" + "\n".join(markers) if markers else ""
    body = "\n".join(lines)
    if len(body) + len(tail) > BODY_LIMIT:
        body = body[: BODY_LIMIT - len(tail) - 20] + "\n\n…(truncated)"
    return body + tail


def render_markdown(message: Message, *, markers: tuple[str, ...] = ()) -> str:
    """Markdown body of an issue or comment: heading, text, a fields table, links, footer, markers."""
    lines = [f"### {_EMOJI.get(message.severity, '')} {_md(message.title)}".replace("  ", " ")]
    if message.text:
        lines += ["", _md(message.text)]
    if message.fields:
        lines += ["", "| | |", "| --- | --- |"]
        lines += [f"| **{_cell(f.title)}** | {_cell(f.value)} |" for f in message.fields]
    links = [
        _link(link.text or link.url, link.url)
        for link in message.links
        if link.url.lower().startswith(("http://", "https://"))
    ]
    if links:
        lines += ["", " · ".join(links)]
    return _finish(lines, message, "sent by Tocsin", markers)


ALERT_PREFIX = {"trigger": "Still firing", "acknowledge": "Acknowledged", "resolve": "Resolved"}
BUILD_PREFIX = {"trigger": "Failed again", "acknowledge": "Acknowledged", "resolve": "Fixed"}
_BUILD_ICON = {"success": "✅", "failure": "❌", "cancelled": "🚫", "timed_out": "⏱️", "started": "⏳"}
_COVERAGE_ICON = {"ok": "✅", "dropped": "⚠️", "below_min": "❌"}
_IDENTITY_FIELDS = {"repository", "branch", "commit", "status", "author", "pull request"}
_COUNT = re.compile(r"(\d+)\s+(passed|failed|error|errors|warning|warnings|note|notes)\b")
_COVERAGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%(?:\s*\(\s*([+\-−]?\d+(?:\.\d+)?))?")


def _counts(text: str) -> dict[str, int]:
    """``"120 passed, 2 failed"`` → ``{"passed": 120, "failed": 2}`` (plurals folded)."""
    return {kind.rstrip("s"): int(n) for n, kind in _COUNT.findall(text)}


def _field(message: Message, title: str) -> str | None:
    wanted = title.lower()
    return next((f.value for f in message.fields if f.title.strip().lower() == wanted), None)


def run_url(message: Message) -> str | None:
    """The build's run link: ``labels.url``, else the first web link."""
    return message.labels.get("url") or next(
        (link.url for link in message.links if link.url.lower().startswith(("http://", "https://"))), None
    )


def _coverage_text(value: str) -> str:
    """``"81.2% (-1.3 vs 82.5%)"`` → ``"81.2% (−1.3)"``; a value without a delta is kept as is."""
    found = _COVERAGE.match(value)
    if not found:
        return value.strip()
    percent, delta = found.group(1), found.group(2)
    return f"{percent}% ({delta.replace('-', '−')})" if delta else f"{percent}%"


def _tests_failed(value: str) -> int:
    counts = _counts(value)
    return counts.get("failed", 0) + counts.get("error", 0)


def _coverage_bad(message: Message) -> bool:
    return message.labels.get("coverage_state", "") in ("dropped", "below_min")


def render_status_table(message: Message, *, markers: tuple[str, ...] = ()) -> str:
    """A build's sticky PR comment: heading, what was built, then one row per check.

    Rows: **Build** (status and run link), **Tests** (passed/failed), **Coverage** (with its delta; ⚠️/❌
    when ``labels.coverage_state`` is ``dropped``/``below_min``), one per **Security (tool)** field,
    **Flaky tests** (``none`` when the message has tests but no flaky ones), **Duration**, then the
    message's other fields (trends). The message text (failing tests, findings) follows the table.
    """
    labels = message.labels
    lines = [f"### {_EMOJI.get(message.severity, '')} {_md(message.title)}".replace("  ", " ")]
    where = []
    if labels.get("repo") and labels.get("branch"):
        where.append(f"{_md(labels['repo'])}@{_md(labels['branch'])}")
    commit = labels.get("commit") or _field(message, "commit") or ""
    if commit:
        who = f" by {_md(labels['author'])}" if labels.get("author") else ""
        where.append(f"commit `{commit[:7].replace('`', '')}`{who}")
    if where:
        lines += ["", " · ".join(where)]
    status = labels.get("status", "")
    url = run_url(message)
    build = f"{_BUILD_ICON.get(status, '')} {_md(status or 'unknown')}".strip()
    if url:
        build += " · " + _link("View run", url)
    rows: list[tuple[str, str]] = [("Build", build)]
    tests = _field(message, "tests")
    if tests is not None:
        rows.append(("Tests", f"{'❌' if _tests_failed(tests) else '✅'} {_cell(tests)}"))
    coverage = _field(message, "coverage")
    if coverage is not None:
        icon = _COVERAGE_ICON.get(labels.get("coverage_state", ""), "")
        rows.append(("Coverage", f"{icon} {_cell(coverage)}".strip()))
    for f in message.fields:
        if f.title.lower().startswith("security"):
            counts = _counts(f.value)
            icon = "❌" if counts.get("error") else "⚠️" if counts.get("warning") else "✅"
            rows.append((f.title, f"{icon} {_cell(f.value)}"))
    flaky = _field(message, "flaky tests")
    if flaky is not None:
        rows.append(("Flaky tests", f"⚠️ {_cell(flaky)}"))
    elif tests is not None:
        rows.append(("Flaky tests", "✅ none"))
    duration = _field(message, "duration")
    if duration is not None:
        rows.append(("Duration", _cell(duration)))
    shown = {"tests", "coverage", "flaky tests", "duration"} | _IDENTITY_FIELDS
    rows += [
        (f.title, _cell(f.value))
        for f in message.fields
        if f.title.strip().lower() not in shown and not f.title.lower().startswith("security")
    ]
    lines += ["", "| Check | Result |", "| --- | --- |"]
    lines += [f"| **{_cell(title)}** | {value} |" for title, value in rows]
    if message.text:
        lines += ["", _md(message.text)]
    return _finish(lines, message, "updated by Tocsin on every run", markers)


def commit_statuses(message: Message) -> list[dict[str, str]]:
    """The commit statuses of a build message (without ``target_url``), one per context.

    ``tocsin/<workflow>``: ``labels.status`` through :data:`STATUS_STATE` (none for an unknown status);
    ``tocsin/tests`` with a ``Tests`` field; ``tocsin/coverage`` with a ``Coverage`` field.
    """
    out: list[dict[str, str]] = []
    state = STATUS_STATE.get(message.labels.get("status", ""))
    if state:
        workflow = message.labels.get("workflow") or "ci"
        title = trim(" ".join(message.title.split()), DESCRIPTION_LIMIT)
        out.append({"context": f"tocsin/{workflow}", "state": state, "description": title})
    tests = _field(message, "tests")
    if tests is not None:
        counts = _counts(tests)
        failed = _tests_failed(tests)
        description = f"{counts.get('passed', 0)} passed, {failed} failed"
        out.append({"context": "tocsin/tests", "state": "failure" if failed else "success", "description": description})
    coverage = _field(message, "coverage")
    if coverage is not None:
        state = "failure" if _coverage_bad(message) else "success"
        description = trim(_coverage_text(coverage), DESCRIPTION_LIMIT)
        out.append({"context": "tocsin/coverage", "state": state, "description": description})
    return out
