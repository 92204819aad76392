"""The ``github`` channel against a local fake of the GitHub REST API (and the fake's own contract)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from activities.channels.base import ChannelDeps, ChannelError, SendContext
from activities.channels.github import (
    GitHubChannel,
    commit_statuses,
    marker,
    render_markdown,
    render_status_table,
    send_marker,
    sticky_marker,
)
from tests.fakes.github import FakeGitHub
from workflows.models import Link, Message, MessageField

REPO = "acme/api"
SHA = "3f786850e387550fdab836ed7e6dc881de23001b"


@pytest.fixture(scope="module")
def github_server():
    with FakeGitHub(repos=[REPO, "acme/web"]) as fake:
        yield fake


@pytest.fixture
def gh(github_server: FakeGitHub):
    github_server.reset()
    yield github_server
    github_server.reset()


@pytest.fixture
async def make_channel(gh: FakeGitHub, tmp_path: Path):
    client = httpx.AsyncClient()
    deps = ChannelDeps(http=client, home=tmp_path)

    def make(**overrides: Any) -> GitHubChannel:
        settings = {"token": gh.token, "repo": REPO, "api_url": gh.url, **overrides}
        return GitHubChannel("gh", settings, deps)

    yield make
    await client.aclose()


def build_message(**overrides: Any) -> Message:
    labels = {
        "alertname": "BuildFailed",
        "kind": "build",
        "repo": REPO,
        "branch": "main",
        "workflow": "ci",
        "status": "failure",
        "severity": "error",
        "service": "api",
        "author": "alice",
    }
    labels.update(overrides.pop("labels", {}))
    data: dict[str, Any] = dict(
        title="Build failed: acme/api@main (ci)",
        text="Failing for 2 builds in a row.",
        severity="error",
        fields=[MessageField(title="Branch", value="main"), MessageField(title="Commit", value=SHA[:7])],
        links=[Link(text="View run", url="https://ci.example.com/runs/42")],
        labels=labels,
        source="pipeline/acme/api/main",
    )
    data.update(overrides)
    return Message(**data)


def incident(title: str = "HighErrorRate on api", **overrides: Any) -> Message:
    return build_message(
        title=title,
        labels={"alertname": "HighErrorRate", "kind": "alert", "status": "firing"},
        source="incident/abc",
        **overrides,
    )


# =========================================================================== rendering


def test_markdown_has_fields_links_and_markers_and_neutralises_html_and_mentions():
    message = build_message(
        text="see <!-- tocsin:spoof --> and @pytest.fixture, mail bob@example.com",
        fields=[MessageField(title="A|B", value="x\ny")],
    )
    body = render_markdown(message, markers=(marker("k"),))
    assert body.startswith("### ❌ Build failed: acme/api@main (ci)")
    assert "<!-- tocsin:spoof -->" not in body and "&lt;!-- tocsin:spoof --&gt;" in body
    assert "`@pytest`.fixture" in body and "bob@example.com" in body
    assert "| **A\\|B** | x<br>y |" in body
    assert "[View run](https://ci.example.com/runs/42)" in body
    assert body.endswith("<!-- tocsin:k -->")


def test_markers_never_break_out_of_the_html_comment():
    assert marker("wf-1/step/gh") == "<!-- tocsin:wf-1/step/gh -->"
    for key in ("a-->b", "a--b", "x y", "ü"):
        token = marker(key)[len("<!-- tocsin:") : -len(" -->")]
        assert "--" not in token.replace("sha256-", "") and ">" not in token and token.startswith("sha256-")
    assert sticky_marker("pipeline/acme/api/main") == "<!-- tocsin:sticky:pipeline/acme/api/main -->"
    assert send_marker("k") == "<!-- tocsin-send:k -->"


def test_bad_repo_setting_is_rejected(tmp_path: Path):
    deps = ChannelDeps(http=httpx.AsyncClient(), home=tmp_path)
    with pytest.raises(ChannelError) as err:
        GitHubChannel("gh", {"token": "t", "repo": "just-a-name"}, deps)
    assert not err.value.retryable and "owner/name" in str(err.value)


# =========================================================================== commit statuses


async def test_commit_status_with_headers_context_and_target_url(gh: FakeGitHub, make_channel):
    sent = await make_channel().send(build_message(labels={"commit": SHA}), "wf/event-1/gh", 1)

    [status] = gh.statuses(REPO, SHA)
    assert status["state"] == "failure" and status["context"] == "tocsin/ci"
    assert status["description"] == "Build failed: acme/api@main (ci)"
    assert status["target_url"] == "https://ci.example.com/runs/42"
    assert sent.message_id == str(status["id"])
    [call] = gh.calls("statuses.create")
    assert call.status == 201
    assert call.headers["authorization"] == f"Bearer {gh.token}"
    assert call.headers["accept"] == "application/vnd.github+json"
    assert call.headers["x-github-api-version"] == "2022-11-28"
    assert call.headers["user-agent"]
    assert gh.issues(REPO) == []  # a status, not an issue


@pytest.mark.parametrize(
    "status,state",
    [
        ("success", "success"),
        ("failure", "failure"),
        ("cancelled", "error"),
        ("timed_out", "failure"),
        ("started", "pending"),
    ],
)
async def test_build_status_maps_to_commit_state(gh: FakeGitHub, make_channel, status: str, state: str):
    await make_channel().send(build_message(labels={"commit": SHA, "status": status, "workflow": "release"}), "k", 1)
    [made] = gh.statuses(REPO, SHA)
    assert made["state"] == state and made["context"] == "tocsin/release"


async def test_status_description_is_trimmed_to_140(gh: FakeGitHub, make_channel):
    await make_channel().send(build_message(title="x" * 300, labels={"commit": SHA}), "k", 1)
    [made] = gh.statuses(REPO, SHA)
    assert len(made["description"]) == 140 and made["description"].endswith("…")


async def test_url_label_wins_as_target_url(gh: FakeGitHub, make_channel):
    await make_channel().send(build_message(labels={"commit": SHA, "url": "https://ci.example.com/r/7"}), "k", 1)
    assert gh.statuses(REPO, SHA)[0]["target_url"] == "https://ci.example.com/r/7"


async def test_a_full_sha_in_the_commit_field_is_used_when_no_label(gh: FakeGitHub, make_channel):
    message = build_message(fields=[MessageField(title="Commit", value=SHA)])
    await make_channel().send(message, "k", 1)
    assert len(gh.statuses(REPO, SHA)) == 1


# =========================================================================== sticky PR comments


async def test_sticky_comment_is_created_then_updated_in_place(gh: FakeGitHub, make_channel):
    pr = gh.add_pull(REPO)
    channel = make_channel()
    first = await channel.send(build_message(labels={"pr": str(pr)}), "wf/event-1/gh", 1)
    second = await channel.send(
        build_message(
            title="Build fixed: acme/api@main (ci)", severity="success", labels={"pr": str(pr), "status": "success"}
        ),
        "wf/event-2/gh",
        1,
    )

    [comment] = gh.comments(REPO, pr)
    assert first.message_id == second.message_id == str(comment["id"])
    assert "Build fixed" in comment["body"] and "Build failed" not in comment["body"]
    assert sticky_marker("pipeline/acme/api/main") in comment["body"]
    assert len(gh.calls("comments.create")) == 1 and len(gh.calls("comments.update")) == 1
    assert second.url and second.url.endswith(f"#issuecomment-{comment['id']}")


async def test_each_workflow_source_gets_its_own_sticky_comment(gh: FakeGitHub, make_channel):
    pr = gh.add_pull(REPO)
    channel = make_channel()
    await channel.send(build_message(labels={"pr": f"#{pr}"}), "a", 1)
    await channel.send(build_message(labels={"pr": str(pr)}, source="pipeline/acme/api/release"), "b", 1)
    assert len(gh.comments(REPO, pr)) == 2


async def test_sticky_comment_retry_after_lost_answer_does_not_double(gh: FakeGitHub, make_channel):
    pr = gh.add_pull(REPO)
    gh.fail_after_accept(route="comments.create", status=502)
    with pytest.raises(ChannelError) as err:
        await make_channel().send(build_message(labels={"pr": str(pr)}), "wf/event-1/gh", 1)
    assert err.value.retryable
    again = await make_channel().send(build_message(labels={"pr": str(pr)}), "wf/event-1/gh", 2)
    [comment] = gh.comments(REPO, pr)
    assert again.duplicate and again.message_id == str(comment["id"])
    assert gh.calls("comments.update") == []  # same body: nothing to edit


async def test_commit_and_pr_give_status_and_sticky_comment(gh: FakeGitHub, make_channel):
    pr = gh.add_pull(REPO)
    sent = await make_channel().send(build_message(labels={"pr": str(pr), "commit": SHA}), "k", 1)
    assert len(gh.statuses(REPO, SHA)) == 1
    [comment] = gh.comments(REPO, pr)
    assert sent.message_id == str(comment["id"])


async def test_sticky_marker_found_beyond_the_first_page(gh: FakeGitHub, make_channel):
    pr = gh.add_pull(REPO)
    for i in range(120):
        gh.add_comment(REPO, pr, f"human comment {i}")
    channel = make_channel()
    await channel.send(build_message(labels={"pr": str(pr)}), "a", 1)
    await channel.send(build_message(labels={"pr": str(pr)}), "b", 1)
    assert len(gh.comments(REPO, pr)) == 121
    assert len(gh.calls("comments.update")) == 1


# =========================================================================== PR status table and contexts


def checked_build(**overrides: Any) -> Message:
    """A finished build with tests, coverage (and its delta), a scanner, flaky tests and a duration."""
    fields = [
        MessageField(title="Repository", value=REPO),
        MessageField(title="Branch", value="feature-x"),
        MessageField(title="Commit", value=SHA[:7]),
        MessageField(title="Status", value="failure"),
        MessageField(title="Duration", value="12m 34s"),
        MessageField(title="Tests", value="120 passed, 2 failed, 3 skipped"),
        MessageField(title="Coverage", value="81.2% (-1.3 vs 82.5%)"),
        MessageField(title="Security (trivy)", value="1 error, 2 warning, 0 note"),
        MessageField(title="Flaky tests", value="tests/test_cart.py::test_total"),
        MessageField(title="Success rate", value="88%"),
    ]
    labels = {"branch": "feature-x", "commit": SHA, "coverage_state": "dropped", **overrides.pop("labels", {})}
    return build_message(
        fields=overrides.pop("fields", fields),
        text="✗ tests.test_cart.test_total: assert 3 == 4",
        labels=labels,
        **overrides,
    )


def table_rows(body: str) -> dict[str, str]:
    """``| **Title** | value |`` rows of a rendered status table."""
    rows = {}
    for line in body.splitlines():
        if line.startswith("| **"):
            title, value = line[len("| **") :].rstrip(" |").split("** | ", 1)
            rows[title] = value
    return rows


def test_status_table_has_one_row_per_check():
    body = render_status_table(checked_build(), markers=(sticky_marker("s"),))
    assert body.startswith("### ❌ Build failed: acme/api@main (ci)")
    assert f"acme/api@feature-x · commit `{SHA[:7]}` by alice" in body
    assert table_rows(body) == {
        "Build": "❌ failure · [View run](https://ci.example.com/runs/42)",
        "Tests": "❌ 120 passed, 2 failed, 3 skipped",
        "Coverage": "⚠️ 81.2% (-1.3 vs 82.5%)",
        "Security (trivy)": "❌ 1 error, 2 warning, 0 note",
        "Flaky tests": "⚠️ tests/test_cart.py::test_total",
        "Duration": "12m 34s",
        "Success rate": "88%",
    }
    assert "| Check | Result |" in body
    assert body.index("| **Duration**") < body.index("✗ tests.test_cart.test_total")  # the text follows the table
    assert body.endswith(sticky_marker("s"))


def test_status_table_of_a_green_build_without_flaky_tests():
    fields = [
        MessageField(title="Tests", value="122 passed, 0 failed, 0 skipped"),
        MessageField(title="Coverage", value="82.0%"),
        MessageField(title="Security (semgrep)", value="0 error, 0 warning, 3 note"),
    ]
    message = checked_build(
        title="Build fixed: acme/api@main (ci)",
        severity="success",
        fields=fields,
        labels={"status": "success", "coverage_state": "ok", "url": "https://ci.example.com/r/9"},
    )
    assert table_rows(render_status_table(message)) == {
        "Build": "✅ success · [View run](https://ci.example.com/r/9)",
        "Tests": "✅ 122 passed, 0 failed, 0 skipped",
        "Coverage": "✅ 82.0%",
        "Security (semgrep)": "✅ 0 error, 0 warning, 3 note",
        "Flaky tests": "✅ none",
    }


def test_status_table_neutralises_html_and_mentions_in_values():
    fields = [MessageField(title="Flaky tests", value="@acme/devs <!-- tocsin:sticky:x --> a|b")]
    body = render_status_table(checked_build(fields=fields))
    assert "<!-- tocsin:sticky:x -->" not in body and "`@acme/devs`" in body
    assert table_rows(body)["Flaky tests"] == "⚠️ `@acme/devs` &lt;!-- tocsin:sticky:x --&gt; a\\|b"


async def test_sticky_status_table_is_edited_in_place_on_the_next_run(gh: FakeGitHub, make_channel):
    pr = gh.add_pull(REPO)
    channel = make_channel()
    first = await channel.send(checked_build(labels={"pr": str(pr)}), "pipeline/acme/api/feature-x/event-1/gh", 1)
    [comment] = gh.comments(REPO, pr)
    assert table_rows(comment["body"])["Tests"] == "❌ 120 passed, 2 failed, 3 skipped"

    fixed = [
        MessageField(title="Tests", value="122 passed, 0 failed, 0 skipped"),
        MessageField(title="Coverage", value="82.6% (+0.1 vs 82.5%)"),
    ]
    second = await channel.send(
        checked_build(
            title="Build fixed: acme/api@feature-x (ci)",
            severity="success",
            fields=fixed,
            labels={"pr": str(pr), "status": "success", "coverage_state": "ok"},
        ),
        "pipeline/acme/api/feature-x/event-2/gh",
        1,
    )
    [comment] = gh.comments(REPO, pr)
    assert first.message_id == second.message_id == str(comment["id"])
    assert table_rows(comment["body"]) == {
        "Build": "✅ success · [View run](https://ci.example.com/runs/42)",
        "Tests": "✅ 122 passed, 0 failed, 0 skipped",
        "Coverage": "✅ 82.6% (+0.1 vs 82.5%)",
        "Flaky tests": "✅ none",
    }
    assert "Build failed" not in comment["body"] and sticky_marker("pipeline/acme/api/main") in comment["body"]
    assert len(gh.calls("comments.create")) == 1 and len(gh.calls("comments.update")) == 1
    # Each run also posted its statuses; the latest per context is what GitHub shows.
    latest = {s["context"]: s for s in gh.statuses(REPO, SHA)}
    assert {c: (s["state"], s["description"]) for c, s in latest.items()} == {
        "tocsin/ci": ("success", "Build fixed: acme/api@feature-x (ci)"),
        "tocsin/tests": ("success", "122 passed, 0 failed"),
        "tocsin/coverage": ("success", "82.6% (+0.1)"),
    }


async def test_build_posts_a_status_per_context(gh: FakeGitHub, make_channel):
    sent = await make_channel().send(checked_build(), "wf/event-3/gh", 1)
    made = gh.statuses(REPO, SHA)
    assert [(s["context"], s["state"], s["description"]) for s in made] == [
        ("tocsin/ci", "failure", "Build failed: acme/api@main (ci)"),
        ("tocsin/tests", "failure", "120 passed, 2 failed"),
        ("tocsin/coverage", "failure", "81.2% (−1.3)"),
    ]
    assert {s["target_url"] for s in made} == {"https://ci.example.com/runs/42"}
    assert sent.message_id == str(made[0]["id"])  # the build's own status
    assert gh.issues(REPO) == []


@pytest.mark.parametrize(
    "coverage_state,state", [("ok", "success"), ("", "success"), ("dropped", "failure"), ("below_min", "failure")]
)
def test_coverage_context_follows_the_coverage_state(coverage_state: str, state: str):
    statuses = {s["context"]: s for s in commit_statuses(checked_build(labels={"coverage_state": coverage_state}))}
    assert statuses["tocsin/coverage"]["state"] == state


def test_tests_context_counts_errors_as_failures_and_needs_a_tests_field():
    message = checked_build(fields=[MessageField(title="Tests", value="10 passed, 0 failed, 2 errors")])
    statuses = {s["context"]: s for s in commit_statuses(message)}
    assert statuses["tocsin/tests"] == {
        "context": "tocsin/tests",
        "state": "failure",
        "description": "10 passed, 2 failed",
    }
    assert "tocsin/coverage" not in statuses
    assert [s["context"] for s in commit_statuses(checked_build(fields=[]))] == ["tocsin/ci"]


# =========================================================================== tracking issues


async def test_trigger_opens_then_comments_then_resolve_closes(gh: FakeGitHub, make_channel):
    channel = make_channel()
    opened = await channel.send(
        incident(), "incident/abc/trigger-1/gh", 1, SendContext(action="trigger", dedup_key="incident/abc")
    )
    [issue] = gh.issues(REPO)
    assert opened.message_id == str(issue["number"]) and opened.url == issue["html_url"]
    assert marker("incident/abc") in issue["body"] and [lb["name"] for lb in issue["labels"]] == ["tocsin"]
    assert issue["title"] == "HighErrorRate on api"

    again = await channel.send(
        incident(), "incident/abc/trigger-2/gh", 1, SendContext(action="trigger", dedup_key="incident/abc")
    )
    assert again.message_id == opened.message_id and len(gh.issues(REPO)) == 1
    assert [c["body"].splitlines()[0] for c in gh.comments(REPO, issue["number"])] == [
        "### ❌ Still firing: HighErrorRate on api"
    ]

    resolved = await channel.send(
        incident(severity="success"),
        "incident/abc/resolve/gh",
        1,
        SendContext(action="resolve", dedup_key="incident/abc"),
    )
    [issue] = gh.issues(REPO)
    assert resolved.message_id == opened.message_id
    assert issue["state"] == "closed" and issue["state_reason"] == "completed"
    assert gh.comments(REPO, issue["number"])[-1]["body"].startswith("### ✅ Resolved: HighErrorRate")
    [close] = gh.calls("issues.update")
    assert close.body == {"state": "closed", "state_reason": "completed"}

    nothing = await channel.send(
        incident(), "incident/abc/resolve-2/gh", 1, SendContext(action="resolve", dedup_key="incident/abc")
    )
    assert nothing.duplicate and len(gh.calls("issues.update")) == 1


async def test_build_tracking_issue_is_labelled_tocsin_ci_and_keeps_its_title(gh: FakeGitHub, make_channel):
    channel = make_channel(labels=["ci", "tocsin-ci"])
    ctx = SendContext(action="trigger", dedup_key="pipeline/acme/api/main/tracking")
    title = "CI failure alerts: acme/api@main"
    opened = await channel.send(build_message(title=title), "pipeline/acme/api/main/track-1/gh", 1, ctx)
    [issue] = gh.issues(REPO)
    assert issue["title"] == title and opened.message_id == str(issue["number"])
    assert [lb["name"] for lb in issue["labels"]] == ["tocsin", "tocsin-ci", "ci"]

    await channel.send(build_message(title=title), "pipeline/acme/api/main/track-2/gh", 1, ctx)
    resolve = SendContext(action="resolve", dedup_key="pipeline/acme/api/main/tracking")
    await channel.send(
        build_message(title=title, severity="success", labels={"status": "success"}),
        "pipeline/acme/api/main/track-3/gh",
        1,
        resolve,
    )
    [issue] = gh.issues(REPO)
    assert issue["state"] == "closed" and len(gh.calls("issues.create")) == 1
    assert [c["body"].splitlines()[0] for c in gh.comments(REPO, issue["number"])] == [
        f"### ❌ Failed again: {title}",
        f"### ✅ Fixed: {title}",
    ]
    assert gh.statuses(REPO) == []  # the tracking issue posts no commit status


async def test_alert_tracking_issue_has_no_ci_label(gh: FakeGitHub, make_channel):
    await make_channel().send(incident(), "t", 1, SendContext(action="trigger", dedup_key="inc-ci"))
    [issue] = gh.issues(REPO)
    assert [lb["name"] for lb in issue["labels"]] == ["tocsin"]


async def test_acknowledge_comments_without_closing(gh: FakeGitHub, make_channel):
    channel = make_channel()
    await channel.send(incident(), "t", 1, SendContext(action="trigger", dedup_key="inc-1"))
    await channel.send(incident(), "a", 1, SendContext(action="acknowledge", dedup_key="inc-1"))
    [issue] = gh.issues(REPO)
    assert issue["state"] == "open"
    assert gh.comments(REPO, issue["number"])[0]["body"].startswith("### ❌ Acknowledged: ")


async def test_other_incidents_and_closed_issues_are_not_reused(gh: FakeGitHub, make_channel):
    gh.add_issue(REPO, "old", body=marker("inc-1"), labels=["tocsin"], state="closed")
    gh.add_issue(REPO, "other", body=marker("inc-10"), labels=["tocsin"])
    await make_channel().send(incident(), "t", 1, SendContext(action="trigger", dedup_key="inc-1"))
    assert len(gh.issues(REPO)) == 3 and len(gh.issues(REPO, state="open")) == 2


async def test_retried_trigger_after_lost_create_finds_its_issue(gh: FakeGitHub, make_channel):
    gh.fail_after_accept(route="issues.create")
    ctx = SendContext(action="trigger", dedup_key="inc-9")
    with pytest.raises(ChannelError) as err:
        await make_channel().send(incident(), "inc-9/trigger/gh", 1, ctx)
    assert err.value.retryable
    again = await make_channel().send(incident(), "inc-9/trigger/gh", 2, ctx)
    [issue] = gh.issues(REPO)
    assert again.duplicate and again.message_id == str(issue["number"])
    assert gh.comments(REPO, issue["number"]) == []


async def test_retried_resolve_after_failed_close_does_not_comment_twice(gh: FakeGitHub, make_channel):
    channel = make_channel()
    await channel.send(incident(), "t", 1, SendContext(action="trigger", dedup_key="inc-2"))
    gh.fail_next(route="issues.update", status=503)
    ctx = SendContext(action="resolve", dedup_key="inc-2")
    with pytest.raises(ChannelError) as err:
        await channel.send(incident(), "inc-2/resolve/gh", 1, ctx)
    assert err.value.retryable
    await channel.send(incident(), "inc-2/resolve/gh", 2, ctx)
    [issue] = gh.issues(REPO)
    assert issue["state"] == "closed" and len(gh.comments(REPO, issue["number"])) == 1


# =========================================================================== plain notifications


async def test_plain_notify_opens_an_issue_marked_with_the_key(gh: FakeGitHub, make_channel):
    message = Message(title="Nightly report", text="All good", labels={"kind": "report"}, source="report/nightly")
    sent = await make_channel(labels=["reports"]).send(message, "report/nightly/2024-05-01/gh", 1)
    [issue] = gh.issues(REPO)
    assert sent.message_id == str(issue["number"]) and not sent.duplicate
    assert marker("report/nightly/2024-05-01/gh") in issue["body"]
    assert [lb["name"] for lb in issue["labels"]] == ["tocsin", "reports"]
    assert gh.calls("issues.list") == []  # first attempt: no lookup


async def test_retried_issue_open_finds_the_marker(gh: FakeGitHub, make_channel):
    message = Message(title="Nightly report", labels={"kind": "report"})
    gh.fail_after_accept(route="issues.create")
    with pytest.raises(ChannelError) as err:
        await make_channel().send(message, "report/1/gh", 1)
    assert err.value.retryable
    again = await make_channel().send(message, "report/1/gh", 2)
    [issue] = gh.issues(REPO)
    assert again.duplicate and again.message_id == str(issue["number"])
    assert len(gh.calls("issues.create")) == 1


async def test_retried_issue_open_finds_the_marker_beyond_the_first_page(gh: FakeGitHub, make_channel):
    message = Message(title="Nightly report")
    await make_channel().send(message, "report/2/gh", 1)
    for i in range(150):
        gh.add_issue(REPO, f"other {i}", body=marker(f"other-{i}"), labels=["tocsin"])
    again = await make_channel().send(message, "report/2/gh", 2)
    assert again.duplicate and again.message_id == "1"
    assert len(gh.issues(REPO)) == 151


async def test_pull_requests_are_never_taken_for_issues(gh: FakeGitHub, make_channel):
    pr = gh.add_pull(REPO)
    with gh._cond:  # a PR whose description happens to hold the marker
        gh._issues[("acme/api", pr)].update(body=marker("report/3/gh"), labels=[{"name": "tocsin"}])
    sent = await make_channel().send(Message(title="r"), "report/3/gh", 2)
    assert not sent.duplicate and sent.message_id != str(pr)


# =========================================================================== failures


async def test_bad_token_is_permanent(gh: FakeGitHub, make_channel):
    with pytest.raises(ChannelError) as err:
        await make_channel(token="ghp_wrong").send(build_message(labels={"commit": SHA}), "k", 1)
    assert not err.value.retryable and err.value.kind == "BadCredentials" and "Bad credentials" in str(err.value)


async def test_unknown_repo_is_permanent_with_githubs_message(gh: FakeGitHub, make_channel):
    with pytest.raises(ChannelError) as err:
        await make_channel(repo="acme/nope").send(build_message(labels={"commit": SHA}), "k", 1)
    assert not err.value.retryable and "(404): Not Found" in str(err.value)


async def test_validation_failure_is_permanent_with_details(gh: FakeGitHub, make_channel):
    gh.respond_next(
        status=422,
        body={
            "message": "Validation Failed",
            "errors": [{"resource": "Issue", "code": "custom", "field": "labels", "message": "labels are invalid"}],
        },
    )
    with pytest.raises(ChannelError) as err:
        await make_channel().send(Message(title="x"), "k", 1)
    assert not err.value.retryable and "Validation Failed (labels are invalid)" in str(err.value)


async def test_forbidden_without_rate_limit_is_permanent(gh: FakeGitHub, make_channel):
    gh.respond_next(status=403, body={"message": "Resource not accessible by integration"})
    with pytest.raises(ChannelError) as err:
        await make_channel().send(build_message(labels={"commit": SHA}), "k", 1)
    assert not err.value.retryable and "Resource not accessible by integration" in str(err.value)


async def test_primary_rate_limit_retries_at_reset(gh: FakeGitHub, make_channel):
    gh.rate_limit_next(retry_after=120, kind="primary")
    with pytest.raises(ChannelError) as err:
        await make_channel().send(build_message(labels={"commit": SHA}), "k", 1)
    assert err.value.retryable and err.value.kind == "RateLimited"
    assert err.value.retry_after is not None and 115 <= err.value.retry_after <= 121


async def test_secondary_rate_limit_403_honours_retry_after(gh: FakeGitHub, make_channel):
    """A 403 with Retry-After is GitHub's secondary limit, not a permission error (a 429: the conformance suite)."""
    gh.rate_limit_next(retry_after=42, kind="secondary")
    with pytest.raises(ChannelError) as err:
        await make_channel().send(build_message(labels={"commit": SHA}), "k", 1)
    assert err.value.retryable and err.value.retry_after == 42


# =========================================================================== the fake's own contract


async def test_fake_requires_user_agent_and_valid_fields(gh: FakeGitHub):
    async with httpx.AsyncClient(base_url=gh.url, headers={"Authorization": f"Bearer {gh.token}"}) as api:
        no_agent = await api.post(f"/repos/{REPO}/issues", json={"title": "x"}, headers={"User-Agent": ""})
        assert no_agent.status_code == 403
        long_desc = await api.post(f"/repos/{REPO}/statuses/{SHA}", json={"state": "success", "description": "d" * 141})
        assert long_desc.status_code == 422 and long_desc.json()["errors"][0]["field"] == "description"
        bad_state = await api.post(f"/repos/{REPO}/statuses/{SHA}", json={"state": "green"})
        assert bad_state.status_code == 422
        short_sha = await api.post(f"/repos/{REPO}/statuses/abc1234", json={"state": "success"})
        assert short_sha.status_code == 422 and "No commit found" in short_sha.json()["message"]
        no_title = await api.post(f"/repos/{REPO}/issues", json={"body": "x"})
        assert no_title.status_code == 422
        bad_version = await api.get(f"/repos/{REPO}/issues", headers={"X-GitHub-Api-Version": "1999-01-01"})
        assert bad_version.status_code == 400
    assert gh.issues(REPO) == [] and gh.statuses(REPO) == []
