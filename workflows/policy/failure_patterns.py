"""Failure signatures, categories and grouping across branches and repositories (issue 14, item 4).

**Signature.** A failure is named by what failed and how, with the noise taken out:

* with failing tests: the first failing test's node id + its normalised message;
* otherwise, from the log tail: the failing step (when known) + the error class found in the tail (the last
  line naming ``SomethingError``/``SomethingException``, ``error TS2322``, ``error[E0432]``, ``npm ERR! code X``,
  ``make: *** ... Error N``), else the last non-blank line, normalised.

:func:`normalise` replaces, in this order, UUIDs (``<uuid>``), timestamps (``<ts>``), hex ids (``0x7f3a``, or 7+
hex digits with a digit and a letter: commit SHAs, object ids → ``<hex>``), paths (``/a/b.py``, ``C:\\x``,
``./x/y`` → ``<path>``), and numbers (``<n>``); then it collapses blanks and cuts to 200 characters. The key is
the first 16 hex digits of the SHA-256 of the parts, so one failure on two branches, in two runs, at two line
numbers, has one key.

**Category** (:data:`CATEGORY_RULES`, first match wins, over the test message and the log tail): ``security``
(CVE/GHSA ids, vulnerability scanners, leaked secrets), ``dependency`` (resolution and missing modules),
``compile`` (syntax and type-check-as-build errors), ``lint`` (linters and formatters), ``timeout/infra``
(timeouts, runner, network, disk, memory), ``test`` (assertions, failing tests); with none matching, a failure
with failing tests is ``test`` and anything else ``unknown``. The specific, unambiguous markers come first: a
dependency error that surfaces as a test collection error is a dependency problem, and a test that fails with
a timeout is put under ``timeout/infra`` where the fix usually is.

**Grouping** (seed: 5-minute windows, notify at once when critical or ≥ 3): :func:`add_failure` puts an
occurrence in its signature's open window (opened by the first occurrence, ``window_seconds`` long). The flow
sends the grouped message at once when the window reaches ``group_at`` distinct pipelines or the failure is
critical; otherwise it holds it until ``closes`` and then sends what :func:`due_groups` returns. The hint names
the first run, commit and author where the signature appeared (kept for ``max_signatures`` signatures).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel

from workflows.pipeline.health_models import FailureGroup, Occurrence, PatternConfig, PatternState
from workflows.pipeline.models import TestOutcome

__all__ = [
    "Category",
    "CATEGORY_RULES",
    "Signature",
    "GroupDecision",
    "normalise",
    "error_class",
    "categorise",
    "signature",
    "add_failure",
    "due_groups",
    "mark_sent",
    "hint",
    "group_text",
]

Category = Literal["security", "dependency", "compile", "lint", "timeout/infra", "test", "unknown"]

_I = re.IGNORECASE
CATEGORY_RULES: tuple[tuple[Category, re.Pattern[str]], ...] = (
    (
        "security",
        re.compile(
            r"\bCVE-\d{4}-\d{4,}|\bGHSA-\w{4}-\w{4}-\w{4}|vulnerabilit(y|ies) found|\b(trivy|grype|snyk|bandit|"
            r"gitleaks|trufflehog|npm audit|pip-audit|safety check)\b|secret(s)? detected|CVSS",
            _I,
        ),
    ),
    (
        "dependency",
        re.compile(
            r"ModuleNotFoundError|No module named|Cannot find module|Could not find a version|ResolutionImpossible|"
            r"No matching distribution|npm ERR! code E(RESOLVE|NOTARGET|404)|Could not resolve dependencies|"
            r"unable to resolve dependency|lock ?file .*(out of date|not up to date)|version solving failed|"
            r"go: .*(unknown revision|missing go\.sum entry)|failed to download|package .* not found",
            _I,
        ),
    ),
    (
        "compile",
        re.compile(
            r"SyntaxError|IndentationError|error TS\d+|error\[E\d+\]|COMPILATION ERROR|compilation failed|"
            r"cannot find symbol|undefined reference to|error: expected|error CS\d+|does not compile|linker failed|"
            r"ld returned \d+ exit status|linking failed|"
            r"could not compile|build failed",
            _I,
        ),
    ),
    (
        "lint",
        re.compile(
            r"\b(ruff|flake8|pylint|eslint|stylelint|prettier|golangci-lint|rubocop|clippy|shellcheck|hadolint|"
            r"black|isort|mypy|pyright)\b|would reformat|lint(ing)? (failed|errors?)|code style",
            _I,
        ),
    ),
    (
        "timeout/infra",
        re.compile(
            r"timed? ?out|TimeoutError|deadline exceeded|No space left on device|out of memory|OOMKilled|"
            r"\bKilled\b|exit code 137|runner .*(lost|shutdown)|lost communication with the server|"
            r"Connection (refused|reset)|ECONNRESET|ETIMEDOUT|network is unreachable|Could not resolve host|"
            r"Temporary failure in name resolution|503 Service Unavailable|rate limit|The operation was canceled",
            _I,
        ),
    ),
    (
        "test",
        re.compile(r"AssertionError|assert |FAILED tests?/|tests? failed|expected .* but (was|got)|\b\d+ failed\b", _I),
    ),
)
"""(category, pattern) in order: the first pattern found in the message or log tail decides."""

_NORMALISERS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", _I), "<uuid>"),
    (
        re.compile(
            r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?|\b\d{2}:\d{2}:\d{2}(\.\d+)?"
        ),
        "<ts>",
    ),
    (re.compile(r"\b0x[0-9a-f]+\b|\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{7,64}\b", _I), "<hex>"),
    (re.compile(r"(?<![\w<])(?:[A-Za-z]:\\|\.{0,2}/)?(?:[\w.@+-]+[/\\])+[\w.@+-]+"), "<path>"),
    (re.compile(r"\d+(\.\d+)?"), "<n>"),
)
_ERROR_CLASS = (
    re.compile(r"\b([A-Za-z_][\w.]*(?:Error|Exception|Failure|Interrupt))\b"),
    re.compile(r"\berror (TS\d+)\b"),
    re.compile(r"\berror\[(E\d+)\]"),
    re.compile(r"npm ERR! code (\w+)"),
    re.compile(r"make: \*\*\* .*(Error \d+)"),
)
_MAX_PART = 200


class Signature(BaseModel):
    """What a failure is, without its noise."""

    key: str
    category: Category
    summary: str
    """``test: normalised message`` or ``step: error class``."""
    kind: Literal["test", "log"]


class GroupDecision(BaseModel):
    """What to do with one failure's occurrence."""

    state: PatternState
    group: FailureGroup
    action: Literal["send", "hold", "follow"]
    """``send``: send the grouped message now; ``hold``: wait until ``group.closes`` (then :func:`due_groups`);
    ``follow``: the group was already sent, this is one more occurrence (edit or add to that message)."""
    first: Occurrence
    """Where the signature first appeared (for the hint)."""


def normalise(text: str) -> str:
    """``text`` without what changes from run to run (see the module doc)."""
    out = text.strip()
    for pattern, repl in _NORMALISERS:
        out = pattern.sub(repl, out)
    return " ".join(out.split())[:_MAX_PART]


_RUNNER_NOISE = re.compile(r"process completed with exit code|^##\[error\]\s*$|^error: process completed", re.I)
"""The CI runner's own closing lines (GitHub Actions'), which say nothing about the failure."""
_ERRORISH = re.compile(r"\b(error|fatal|failed|failure)\b", re.I)


def error_class(log_tail: str) -> str:
    """The error class named last in a log tail, else its last line saying error (or its last line), normalised.

    The runner's closing lines ("Process completed with exit code 1.") are passed over.
    """
    lines = [line.strip() for line in log_tail.splitlines() if line.strip() and not _RUNNER_NOISE.search(line)]
    for line in reversed(lines):
        for pattern in _ERROR_CLASS:
            found = pattern.search(line)
            if found:
                return found.group(1)
    errorish = [line for line in lines if _ERRORISH.search(line)]
    return normalise((errorish or lines)[-1]) if lines else ""


def categorise(*texts: str, has_failing_tests: bool = False) -> Category:
    """The category of a failure from its message(s) and log tail (:data:`CATEGORY_RULES`)."""
    joined = "\n".join(t for t in texts if t)
    for category, pattern in CATEGORY_RULES:
        if pattern.search(joined):
            return category
    return "test" if has_failing_tests else "unknown"


def _key(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:16]


def signature(outcomes: Iterable[TestOutcome] = (), log_tail: str = "", step: str | None = None) -> Signature:
    """The signature of one failed run.

    Args:
        outcomes: The run's per-test outcomes; the first failing one (reports put failures first) names it.
        log_tail: The end of the run's log (``tocsin build --log``), for failures without failing tests.
        step: The failing step's name, when the CI says.

    Returns:
        The key, category and the readable summary it was made from.
    """
    failing = next((o for o in outcomes if o.failed), None)
    if failing is not None:
        message = normalise(failing.message)
        summary = f"{failing.nodeid}: {message}" if message else failing.nodeid
        category = categorise(failing.message, log_tail, has_failing_tests=True)
        return Signature(key=_key("test", failing.nodeid, message), category=category, summary=summary, kind="test")
    cls = error_class(log_tail)
    where = step or "build"
    summary = f"{where}: {cls}" if cls else where
    return Signature(key=_key("log", where, cls), category=categorise(log_tail), summary=summary, kind="log")


def _pipeline(occ: Occurrence) -> str:
    return f"{occ.repo}@{occ.branch}"


def _remember(state: PatternState, key: str, occ: Occurrence, now: datetime, limit: int) -> PatternState:
    first_seen = dict(state.first_seen)
    last_seen = {**state.last_seen, key: now}
    first_seen.setdefault(key, occ)
    if len(first_seen) > limit:
        # Least recently seen go first; the key just seen always stays (ties on ``now`` could drop it).
        others = sorted((k for k in first_seen if k != key), key=lambda k: last_seen.get(k, now), reverse=True)
        keep = {key, *others[: limit - 1]}
        first_seen = {k: v for k, v in first_seen.items() if k in keep}
        last_seen = {k: v for k, v in last_seen.items() if k in keep}
    return state.model_copy(update={"first_seen": first_seen, "last_seen": last_seen})


def add_failure(
    state: PatternState,
    sig: Signature,
    occ: Occurrence,
    *,
    now: datetime,
    critical: bool = False,
    config: PatternConfig | None = None,
) -> GroupDecision:
    """Puts one failed run in its signature's window.

    Args:
        state: The grouping state before.
        sig: The run's :func:`signature`.
        occ: Where and when it happened.
        now: The event's time.
        critical: The failure is critical (sent at once, whatever the count).
        config: Window and bounds (defaults: :class:`PatternConfig`).

    Returns:
        The new state, the group and what to do (see :class:`GroupDecision`).
    """
    config = config or PatternConfig()
    state = _remember(state, sig.key, occ, now, config.max_signatures)
    groups = [g for g in state.groups if g.closes > now or g.state == "holding"]
    current = next((g for g in groups if g.key == sig.key and g.closes > now), None)
    if current is None:
        current = FailureGroup(
            key=sig.key,
            category=sig.category,
            summary=sig.summary,
            opened=now,
            closes=now + timedelta(seconds=config.window_seconds),
        )
        groups.append(current)
    pipelines = current.pipelines
    if _pipeline(occ) not in pipelines and len(pipelines) < 50:
        pipelines = [*pipelines, _pipeline(occ)]
    updated = current.model_copy(
        update={
            "occurrences": [*current.occurrences, occ][-config.max_occurrences :],
            "count": current.count + 1,
            "pipelines": pipelines,
        }
    )
    if updated.state == "sent":
        action: Literal["send", "hold", "follow"] = "follow"
    elif critical or len(pipelines) >= config.group_at:
        action = "send"
        updated = updated.model_copy(update={"state": "sent"})
    else:
        action = "hold"
    groups = [updated if g is current else g for g in groups]
    if len(groups) > config.max_groups:  # the oldest windows go first
        groups = sorted(groups, key=lambda g: g.opened)[-config.max_groups :]
    state = state.model_copy(update={"groups": groups})
    return GroupDecision(state=state, group=updated, action=action, first=state.first_seen[sig.key])


def due_groups(state: PatternState, now: datetime) -> list[FailureGroup]:
    """Held groups whose window has closed: send each (one message per group), then :func:`mark_sent`."""
    return [g for g in state.groups if g.state == "holding" and g.closes <= now]


def mark_sent(state: PatternState, key: str, opened: datetime) -> PatternState:
    """Marks a held group sent (the next :func:`add_failure` drops it once its window has closed)."""
    groups = [
        g.model_copy(update={"state": "sent"}) if g.key == key and g.opened == opened else g for g in state.groups
    ]
    return state.model_copy(update={"groups": groups})


def hint(first: Occurrence) -> str:
    """``First seen in run R on acme/shop@main at 1a2b3c4 by alice (2026-03-02 10:02 UTC).``"""
    run = f"run {first.run} " if first.run else ""
    by = f" by {first.author}" if first.author else ""
    return (
        f"First seen in {run}on {first.repo}@{first.branch} at {first.commit[:7]}{by} ({first.at:%Y-%m-%d %H:%M} UTC)."
    )


def group_text(group: FailureGroup) -> str:
    """``Same failure on 3 branches since 10:02 (5 runs): <summary>`` (repos named when they differ)."""
    repos = {p.split("@", 1)[0] for p in group.pipelines}
    where = f"{len(group.pipelines)} branches" if len(repos) == 1 else f"{len(group.pipelines)} pipelines"
    return f"Same failure on {where} since {group.opened:%H:%M} ({group.count} runs, {group.category}): {group.summary}"
