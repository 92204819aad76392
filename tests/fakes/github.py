"""A local fake of the GitHub REST API: commit statuses, issues and issue/PR comments.

Routes (as GitHub has them; the route names are what :meth:`FakeServer.calls` takes)::

    POST  /repos/{owner}/{repo}/statuses/{sha}          statuses.create
    GET   /repos/{owner}/{repo}/issues                  issues.list     (state, labels, per_page, page; Link)
    POST  /repos/{owner}/{repo}/issues                  issues.create
    GET   /repos/{owner}/{repo}/issues/{n}              issues.get
    PATCH /repos/{owner}/{repo}/issues/{n}              issues.update
    GET   /repos/{owner}/{repo}/issues/{n}/comments     comments.list   (per_page, page; Link)
    POST  /repos/{owner}/{repo}/issues/{n}/comments     comments.create
    PATCH /repos/{owner}/{repo}/issues/comments/{id}    comments.update

Requests are validated like GitHub: a token (``Authorization: Bearer`` or ``token``;
``401 Bad credentials``), a ``User-Agent`` (``403`` without), a supported
``X-GitHub-Api-Version`` when one is sent (``400``), JSON bodies, the repository
(``404 Not Found``), ``422 Validation Failed`` with ``errors`` for bad fields (status
``state``, ``description`` over 140 characters, an issue without ``title``, bodies over
65536 characters, a commit SHA that is not one). Pull requests share the issue number
space and appear in the issues list with a ``pull_request`` key, as on GitHub.

Usage::

    with FakeGitHub(repos=["acme/api"]) as gh:
        settings = {"token": gh.token, "repo": "acme/api", "api_url": gh.url}
        pr = gh.add_pull("acme/api")
        ...
        gh.issues("acme/api"), gh.comments("acme/api", pr), gh.statuses("acme/api", sha)

Faults: everything :class:`tests.fakes.base.FakeServer` offers; ``rate_limit_next`` takes
``kind="primary"`` (403, ``x-ratelimit-remaining: 0``, ``x-ratelimit-reset`` = now +
``retry_after``), ``"secondary"`` (403 with ``Retry-After``) or ``"429"`` (429 with
``Retry-After``).
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from .base import FakeServer, Fault, Request, Response

__all__ = ["FakeGitHub", "API_VERSIONS"]

API_VERSIONS = frozenset({"2022-11-28", "2026-03-10"})
DOCS = "https://docs.github.com/rest"
_SHA = re.compile(r"^[0-9a-f]{40}$")
_REPO = r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)"
_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("POST", re.compile(_REPO + r"/statuses/(?P<sha>[^/]+)$"), "statuses.create"),
    ("GET", re.compile(_REPO + r"/issues$"), "issues.list"),
    ("POST", re.compile(_REPO + r"/issues$"), "issues.create"),
    ("PATCH", re.compile(_REPO + r"/issues/comments/(?P<id>\d+)$"), "comments.update"),
    ("GET", re.compile(_REPO + r"/issues/(?P<number>\d+)$"), "issues.get"),
    ("PATCH", re.compile(_REPO + r"/issues/(?P<number>\d+)$"), "issues.update"),
    ("GET", re.compile(_REPO + r"/issues/(?P<number>\d+)/comments$"), "comments.list"),
    ("POST", re.compile(_REPO + r"/issues/(?P<number>\d+)/comments$"), "comments.create"),
]
_STATES = ("error", "failure", "pending", "success")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _invalid(resource: str, field: str, message: str, code: str = "custom") -> Response:
    return Response(
        422,
        {
            "message": "Validation Failed",
            "errors": [{"resource": resource, "code": code, "field": field, "message": message}],
            "documentation_url": DOCS,
        },
    )


class FakeGitHub(FakeServer):
    """A fake GitHub REST API on ``127.0.0.1``. See the module docstring."""

    noun = "write"

    def __init__(
        self,
        token: str = "ghp_fake0123456789",
        repos: Iterable[str] = ("acme/api",),
        port: int = 0,
        *,
        per_page_max: int = 100,
    ):
        super().__init__(port)
        self.token = token
        self.repos = {r.lower() for r in repos}
        self.per_page_max = per_page_max
        self._issues: dict[tuple[str, int], dict[str, Any]] = {}
        self._comments: dict[int, dict[str, Any]] = {}
        self._statuses: list[dict[str, Any]] = []
        self._numbers: dict[str, int] = {}
        self._ids = 1000

    @property
    def url(self) -> str:
        """The ``api_url`` setting."""
        return self.base_url

    def reset_state(self) -> None:
        self._issues.clear()
        self._comments.clear()
        self._statuses.clear()
        self._numbers.clear()

    # ------------------------------------------------------------------ reading and seeding state

    def issues(self, repo: str = "acme/api", *, state: str = "all", pulls: bool = False) -> list[dict[str, Any]]:
        """Issues of ``repo`` (``state`` open/closed/all), oldest first; pull requests only when ``pulls``."""
        with self._cond:
            return [
                dict(i)
                for (r, _n), i in sorted(self._issues.items(), key=lambda kv: kv[0][1])
                if r == repo.lower() and (state == "all" or i["state"] == state) and (pulls or "pull_request" not in i)
            ]

    def comments(self, repo: str, number: int | str) -> list[dict[str, Any]]:
        """Comments on one issue or pull request, oldest first."""
        with self._cond:
            return [
                dict(c) for c in self._comments.values() if c["_repo"] == repo.lower() and c["_number"] == int(number)
            ]

    def statuses(self, repo: str, sha: str | None = None) -> list[dict[str, Any]]:
        """Commit statuses created, oldest first."""
        with self._cond:
            return [dict(s) for s in self._statuses if s["_repo"] == repo.lower() and (sha is None or s["sha"] == sha)]

    def add_pull(self, repo: str = "acme/api", title: str = "A change") -> int:
        """Open a pull request (it takes the next issue number); returns its number."""
        with self._cond:
            issue = self._new_issue(repo.lower(), title, "", [])
            issue["pull_request"] = {"url": f"{self.base_url}/repos/{repo}/pulls/{issue['number']}"}
            return int(issue["number"])

    def add_issue(
        self,
        repo: str = "acme/api",
        title: str = "An issue",
        body: str = "",
        labels: Iterable[str] = (),
        state: str = "open",
    ) -> int:
        """Create an issue directly (not recorded as a request); returns its number."""
        with self._cond:
            issue = self._new_issue(repo.lower(), title, body, list(labels))
            issue["state"] = state
            return int(issue["number"])

    def add_comment(self, repo: str, number: int, body: str) -> int:
        """Create a comment directly (not recorded as a request); returns its id."""
        with self._cond:
            return int(self._new_comment(repo.lower(), number, body)["id"])

    # ------------------------------------------------------------------ FakeServer hooks

    def route(self, request: Request) -> str | None:
        for verb, pattern, name in _ROUTES:
            match = pattern.match(request.path)
            if match and verb == request.verb:
                request.params = match.groupdict()
                return name
        return None

    def not_found(self, request: Request) -> Response:
        return Response(404, {"message": "Not Found", "documentation_url": DOCS, "status": "404"})

    def error_response(self, status: int, request: Request) -> Response:
        return Response(status, {"message": "Server Error" if status == 500 else "Service Unavailable"})

    def rate_limit_next(
        self, n: int = 1, retry_after: float | None = 60, *, route: str | None = None, kind: str = "primary"
    ) -> None:
        """Throttle the next ``n`` requests: ``primary``, ``secondary`` or ``429`` (see the module docstring)."""
        self.add_fault(Fault("ratelimit", route=route, retry_after=retry_after, extra={"kind": kind}), n)

    def rate_limit_response(self, fault: Fault, request: Request) -> Response:
        kind = fault.extra.get("kind", "primary")
        wait = fault.retry_after if fault.retry_after is not None else 60
        if kind == "primary":
            return Response(
                403,
                {"message": "API rate limit exceeded for user ID 1.", "documentation_url": DOCS},
                {
                    "x-ratelimit-limit": "5000",
                    "x-ratelimit-remaining": "0",
                    "x-ratelimit-used": "5000",
                    "x-ratelimit-reset": str(int(time.time() + wait)),
                },
            )
        status = 429 if kind == "429" else 403
        return Response(
            status,
            {
                "message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
                "documentation_url": DOCS,
            },
            {"Retry-After": str(int(wait))},
        )

    def parse(self, request: Request) -> Any:
        if not request.raw:
            return None
        return json.loads(request.raw.decode("utf-8"))

    def handle(self, request: Request) -> Response:
        auth = request.headers.get("authorization", "")
        scheme, _, value = auth.partition(" ")
        if not auth:
            return Response(401, {"message": "Requires authentication", "documentation_url": DOCS})
        if scheme.lower() == "basic":
            user, _, value = base64.b64decode(value).decode("utf-8", "replace").partition(":")
        elif scheme.lower() not in ("bearer", "token"):
            return Response(401, {"message": "Bad credentials", "documentation_url": DOCS})
        if value.strip() != self.token:
            return Response(401, {"message": "Bad credentials", "documentation_url": DOCS})
        if not request.headers.get("user-agent"):
            return Response(
                403,
                {
                    "message": "Request forbidden by administrative rules. Please make sure your "
                    "request has a User-Agent header."
                },
                content_type="text/plain",
            )
        version = request.headers.get("x-github-api-version")
        if version is not None and version not in API_VERSIONS:
            return Response(400, {"message": f"Invalid API version '{version}'", "documentation_url": DOCS})
        if request.verb in ("POST", "PATCH"):
            if request.parse_error is not None:
                return Response(400, {"message": "Problems parsing JSON", "documentation_url": DOCS})
            if not isinstance(request.body, dict):
                return Response(
                    400,
                    {
                        "message": "Invalid request.\n\nFor 'links/0/schema', nil is not an object.",
                        "documentation_url": DOCS,
                    },
                )
        repo = f"{request.params['owner']}/{request.params['repo']}".lower()
        if repo not in self.repos:
            return self.not_found(request)
        handler = getattr(self, "_" + request.route.replace(".", "_"))
        response: Response = handler(request, repo)
        response.headers.setdefault("x-ratelimit-remaining", "4999")
        response.headers.setdefault("x-github-request-id", f"FAKE:{self._ids}")
        return response

    # ------------------------------------------------------------------ state helpers (lock held)

    def _next_id(self) -> int:
        self._ids += 1
        return self._ids

    def _issue_json(self, repo: str, issue: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in issue.items() if not k.startswith("_")}

    def _new_issue(self, repo: str, title: str, body: str, labels: list[str]) -> dict[str, Any]:
        number = self._numbers.get(repo, 0) + 1
        self._numbers[repo] = number
        issue = {
            "id": self._next_id(),
            "number": number,
            "title": title,
            "body": body,
            "state": "open",
            "state_reason": None,
            "labels": [{"name": name} for name in labels],
            "comments": 0,
            "url": f"{self.base_url}/repos/{repo}/issues/{number}",
            "html_url": f"https://github.com/{repo}/issues/{number}",
            "user": {"login": "tocsin-bot"},
            "created_at": _now(),
            "updated_at": _now(),
            "closed_at": None,
        }
        self._issues[(repo, number)] = issue
        return issue

    def _new_comment(self, repo: str, number: int, body: str) -> dict[str, Any]:
        cid = self._next_id()
        comment = {
            "id": cid,
            "body": body,
            "user": {"login": "tocsin-bot"},
            "created_at": _now(),
            "updated_at": _now(),
            "html_url": f"https://github.com/{repo}/issues/{number}#issuecomment-{cid}",
            "url": f"{self.base_url}/repos/{repo}/issues/comments/{cid}",
            "_repo": repo,
            "_number": number,
        }
        self._comments[cid] = comment
        issue = self._issues.get((repo, number))
        if issue is not None:
            issue["comments"] += 1
        return comment

    def _page(self, request: Request, items: list[dict[str, Any]]) -> Response:
        try:
            per_page = min(max(int(request.query.get("per_page", 30)), 1), self.per_page_max)
            page = max(int(request.query.get("page", 1)), 1)
        except ValueError:
            return Response(422, {"message": "Invalid pagination parameter", "documentation_url": DOCS})
        chunk = items[(page - 1) * per_page : page * per_page]
        headers: dict[str, str] = {}
        links = []
        if page * per_page < len(items):
            query = {**request.query, "per_page": str(per_page), "page": str(page + 1)}
            links.append(f'<{self.base_url}{request.path}?{urlencode(query)}>; rel="next"')
            last = (len(items) + per_page - 1) // per_page
            links.append(f'<{self.base_url}{request.path}?{urlencode({**query, "page": str(last)})}>; rel="last"')
        if links:
            headers["Link"] = ", ".join(links)
        return Response(200, chunk, headers)

    @staticmethod
    def _body_error(body: Any, resource: str) -> Response | None:
        if body is not None and not isinstance(body, str):
            return _invalid(resource, "body", "body is not a string", "invalid")
        if isinstance(body, str) and len(body) > 65536:
            return _invalid(resource, "body", "body is too long (maximum is 65536 characters)")
        return None

    # ------------------------------------------------------------------ routes (lock held)

    def _statuses_create(self, request: Request, repo: str) -> Response:
        sha = request.params["sha"]
        body = request.body
        if not _SHA.match(sha):
            return Response(422, {"message": f"No commit found for SHA: {sha}", "documentation_url": DOCS})
        state = body.get("state")
        if state not in _STATES:
            return _invalid("Status", "state", "state is not included in the list", "invalid")
        description = body.get("description")
        if description is not None and (not isinstance(description, str) or len(description) > 140):
            return _invalid("Status", "description", "description is too long (maximum is 140 characters)")
        target = body.get("target_url")
        if target is not None and (not isinstance(target, str) or not target.startswith(("http://", "https://"))):
            return _invalid("Status", "target_url", "target_url must use http(s) scheme")
        context = body.get("context") or "default"
        if sum(1 for s in self._statuses if s["sha"] == sha and s["context"] == context) >= 1000:
            return _invalid("Status", "context", "This SHA and context has reached the maximum number of statuses.")
        status = {
            "id": self._next_id(),
            "state": state,
            "description": description,
            "target_url": target,
            "context": context,
            "sha": sha,
            "created_at": _now(),
            "updated_at": _now(),
            "url": f"{self.base_url}/repos/{repo}/statuses/{sha}",
            "creator": {"login": "tocsin-bot"},
            "_repo": repo,
        }
        self._statuses.append(status)
        self._accept({"kind": "status", **status})
        return Response(201, {k: v for k, v in status.items() if not k.startswith("_") and k != "sha"})

    def _issues_list(self, request: Request, repo: str) -> Response:
        state = request.query.get("state", "open")
        if state not in ("open", "closed", "all"):
            return _invalid("Issue", "state", "state is not included in the list", "invalid")
        wanted = {name.strip() for name in request.query.get("labels", "").split(",") if name.strip()}
        items = [
            i
            for (r, _n), i in self._issues.items()
            if r == repo
            and (state == "all" or i["state"] == state)
            and wanted <= {label["name"] for label in i["labels"]}
        ]
        items.sort(key=lambda i: i["number"], reverse=request.query.get("direction", "desc") == "desc")
        return self._page(request, [self._issue_json(repo, i) for i in items])

    def _issues_create(self, request: Request, repo: str) -> Response:
        body = request.body
        title = body.get("title")
        if title is None:
            return Response(
                422, {"message": 'Invalid request.\n\n"title" wasn\'t supplied.', "documentation_url": DOCS}
            )
        if not isinstance(title, str) or not title.strip():
            return _invalid("Issue", "title", "title can't be blank", "missing_field")
        if len(title) > 256:
            return _invalid("Issue", "title", "title is too long (maximum is 256 characters)")
        bad = self._body_error(body.get("body"), "Issue")
        if bad is not None:
            return bad
        labels = body.get("labels") or []
        if not isinstance(labels, list) or not all(isinstance(x, str) and x for x in labels):
            return _invalid("Issue", "labels", "labels must be an array of strings", "invalid")
        issue = self._new_issue(repo, title, body.get("body") or "", labels)
        self._accept({"kind": "issue", "number": issue["number"], "title": title})
        return Response(201, self._issue_json(repo, issue))

    def _issues_get(self, request: Request, repo: str) -> Response:
        issue = self._issues.get((repo, int(request.params["number"])))
        return self.not_found(request) if issue is None else Response(200, self._issue_json(repo, issue))

    def _issues_update(self, request: Request, repo: str) -> Response:
        issue = self._issues.get((repo, int(request.params["number"])))
        if issue is None:
            return self.not_found(request)
        body = request.body
        state = body.get("state")
        if state is not None and state not in ("open", "closed"):
            return _invalid("Issue", "state", "state is not included in the list", "invalid")
        reason = body.get("state_reason")
        if reason is not None and reason not in ("completed", "not_planned", "reopened", "duplicate"):
            return _invalid("Issue", "state_reason", "state_reason is not included in the list", "invalid")
        if "title" in body and (not isinstance(body["title"], str) or not body["title"].strip()):
            return _invalid("Issue", "title", "title can't be blank", "missing_field")
        bad = self._body_error(body.get("body"), "Issue")
        if bad is not None:
            return bad
        for key in ("title", "body"):
            if key in body:
                issue[key] = body[key]
        if state is not None:
            if state == "closed" and issue["state"] != "closed":
                issue["closed_at"] = _now()
                issue["state_reason"] = reason or "completed"
            elif state == "open":
                issue["closed_at"] = None
                issue["state_reason"] = "reopened" if issue["state"] == "closed" else None
            issue["state"] = state
        issue["updated_at"] = _now()
        self._accept({"kind": "issue_update", "number": issue["number"], "state": issue["state"]})
        return Response(200, self._issue_json(repo, issue))

    def _comments_list(self, request: Request, repo: str) -> Response:
        number = int(request.params["number"])
        if (repo, number) not in self._issues:
            return self.not_found(request)
        items = [
            {k: v for k, v in c.items() if not k.startswith("_")}
            for c in sorted(self._comments.values(), key=lambda c: c["id"])
            if c["_repo"] == repo and c["_number"] == number
        ]
        return self._page(request, items)

    def _comments_create(self, request: Request, repo: str) -> Response:
        number = int(request.params["number"])
        if (repo, number) not in self._issues:
            return self.not_found(request)
        body = request.body.get("body")
        if body is None:
            return Response(422, {"message": 'Invalid request.\n\n"body" wasn\'t supplied.', "documentation_url": DOCS})
        if not isinstance(body, str) or not body.strip():
            return _invalid("IssueComment", "body", "body can't be blank", "missing_field")
        bad = self._body_error(body, "IssueComment")
        if bad is not None:
            return bad
        comment = self._new_comment(repo, number, body)
        self._accept({"kind": "comment", "id": comment["id"], "number": number})
        return Response(201, {k: v for k, v in comment.items() if not k.startswith("_")})

    def _comments_update(self, request: Request, repo: str) -> Response:
        comment = self._comments.get(int(request.params["id"]))
        if comment is None or comment["_repo"] != repo:
            return self.not_found(request)
        body = request.body.get("body")
        if not isinstance(body, str) or not body.strip():
            return _invalid("IssueComment", "body", "body can't be blank", "missing_field")
        bad = self._body_error(body, "IssueComment")
        if bad is not None:
            return bad
        comment["body"] = body
        comment["updated_at"] = _now()
        self._accept({"kind": "comment_update", "id": comment["id"]})
        return Response(200, {k: v for k, v in comment.items() if not k.startswith("_")})
