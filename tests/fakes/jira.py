"""A local fake of the Jira REST API v2 (issues, JQL search, comments, transitions).

Routes (route names in brackets)::

    POST /rest/api/2/issue                         [issue.create]
    GET  /rest/api/2/issue/{key}                   [issue.get]
    GET  /rest/api/2/search/jql?jql=...            [search.jql]     Jira Cloud's current search
    GET|POST /rest/api/2/search                    [search]         410 Gone on Cloud; served when ``cloud=False``
    GET|POST /rest/api/2/issue/{key}/comment       [comment.list] / [comment.create]
    GET|POST /rest/api/2/issue/{key}/transitions   [transitions.list] / [transitions.do]

Validated like Jira: basic auth ``user:token`` (``401``), JSON bodies (``415`` otherwise),
the project and issue type (``400`` with ``errors``), ``summary`` required, at most 255
characters, on one line; ``description`` a string (v2; ADF objects are refused); labels
without spaces. JQL understood: ``field = value`` clauses joined by ``AND`` over
``project``, ``labels``, ``key``, ``status``, ``statusCategory``, plus ``ORDER BY created
[ASC|DESC]``; anything else is a ``400`` JQL error, and an unbounded query on
``/search/jql`` is refused, as on Cloud. Each issue follows a simple workflow:
To Do → In Progress → Done (transitions ``11`` To Do, ``21`` In Progress, ``31`` Done).

``search_lag`` (seconds) hides newly created issues from search for that long, like
Cloud's eventually consistent search.

Usage::

    with FakeJira(projects=["OPS"]) as jira:
        settings = {"url": jira.url, "user": jira.user, "token": jira.token, "project": "OPS"}
        ...
        jira.issues, jira.comments("OPS-1")
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from .base import FakeServer, Fault, Request, Response, fmt_seconds

__all__ = ["FakeJira", "STATUSES", "TRANSITIONS"]

STATUSES = {
    "To Do": {"name": "To Do", "id": "10000", "statusCategory": {"key": "new", "name": "To Do"}},
    "In Progress": {
        "name": "In Progress",
        "id": "3",
        "statusCategory": {"key": "indeterminate", "name": "In Progress"},
    },
    "Done": {"name": "Done", "id": "10001", "statusCategory": {"key": "done", "name": "Done"}},
}
TRANSITIONS = {"11": "To Do", "21": "In Progress", "31": "Done"}
_ISSUE = r"/rest/api/2/issue/(?P<key>[A-Z][A-Z0-9_]*-\d+)"
_ROUTES: list[tuple[tuple[str, ...], re.Pattern[str], str]] = [
    (("POST",), re.compile(r"/rest/api/2/issue/?$"), "issue.create"),
    (("GET",), re.compile(r"/rest/api/2/search/jql$"), "search.jql"),
    (("GET", "POST"), re.compile(r"/rest/api/2/search$"), "search"),
    (("GET",), re.compile(_ISSUE + r"/comment$"), "comment.list"),
    (("POST",), re.compile(_ISSUE + r"/comment$"), "comment.create"),
    (("GET",), re.compile(_ISSUE + r"/transitions$"), "transitions.list"),
    (("POST",), re.compile(_ISSUE + r"/transitions$"), "transitions.do"),
    (("GET",), re.compile(_ISSUE + r"$"), "issue.get"),
]
_CLAUSE = re.compile(r'^\s*(?P<field>[A-Za-z]+)\s*=\s*(?:"(?P<q>[^"]*)"|(?P<bare>[^\s"]+))\s*$')
_ORDER = re.compile(r"(?:^|\s+)ORDER\s+BY\s+created(?:\s+(?P<dir>ASC|DESC))?\s*$", re.IGNORECASE)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def _bad(errors: dict[str, str] | None = None, messages: list[str] | None = None, status: int = 400) -> Response:
    return Response(status, {"errorMessages": messages or [], "errors": errors or {}})


class FakeJira(FakeServer):
    """A fake Jira (Cloud by default) on ``127.0.0.1``. See the module docstring."""

    noun = "write"

    def __init__(
        self,
        user: str = "bot@example.com",
        token: str = "jira-fake-token",
        port: int = 0,
        *,
        projects: Iterable[str] = ("OPS",),
        issue_types: Iterable[str] = ("Task", "Bug", "Incident"),
        cloud: bool = True,
        search_lag: float = 0.0,
    ):
        super().__init__(port)
        self.user = user
        self.token = token
        self.projects = {p.upper() for p in projects}
        self.issue_types = set(issue_types)
        self.cloud = cloud
        """Cloud: ``/rest/api/2/search`` is gone (410); otherwise (Data Center) ``/search/jql`` is 404."""
        self.search_lag = search_lag
        self._issues: dict[str, dict[str, Any]] = {}
        self._comments: dict[str, list[dict[str, Any]]] = {}
        self._counters: dict[str, int] = {}
        self._ids = 10000

    @property
    def url(self) -> str:
        """The ``url`` setting (site base URL)."""
        return self.base_url

    def reset_state(self) -> None:
        self._issues.clear()
        self._comments.clear()
        self._counters.clear()

    # ------------------------------------------------------------------ reading state

    @property
    def issues(self) -> list[dict[str, Any]]:
        """Created issues, oldest first: ``{"id", "key", "fields": {...}}``."""
        with self._cond:
            return [json.loads(json.dumps(i)) for i in self._issues.values()]

    def issue(self, key: str) -> dict[str, Any]:
        """One issue by key (KeyError when absent)."""
        with self._cond:
            return json.loads(json.dumps(self._issues[key]))

    def comments(self, key: str) -> list[dict[str, Any]]:
        """Comments on one issue, oldest first."""
        with self._cond:
            return [dict(c) for c in self._comments.get(key, [])]

    # ------------------------------------------------------------------ FakeServer hooks

    def route(self, request: Request) -> str | None:
        for verbs, pattern, name in _ROUTES:
            match = pattern.match(request.path)
            if match and request.verb in verbs:
                request.params = match.groupdict()
                return name
        return None

    def not_found(self, request: Request) -> Response:
        return Response(404, {"errorMessages": ["null for uri: " + request.path], "errors": {}})

    def error_response(self, status: int, request: Request) -> Response:
        return _bad(messages=["Internal server error"], status=status)

    def rate_limit_response(self, fault: Fault, request: Request) -> Response:
        headers = {} if fault.retry_after is None else {"Retry-After": fmt_seconds(fault.retry_after)}
        headers["X-RateLimit-NearLimit"] = "true"
        return Response(429, {"errorMessages": ["Rate limit exceeded."], "errors": {}}, headers)

    def parse(self, request: Request) -> Any:
        if not request.raw:
            return None
        return json.loads(request.raw.decode("utf-8"))

    def handle(self, request: Request) -> Response:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        try:
            user, _, token = base64.b64decode(value).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            user = token = ""
        if scheme.lower() != "basic" or user != self.user or token != self.token:
            return Response(
                401,
                {
                    "errorMessages": ["You are not authenticated. Authentication required to perform this operation."],
                    "errors": {},
                },
            )
        if request.verb == "POST":
            if request.content_type != "application/json":
                return Response(415, {"errorMessages": ["Unsupported Media Type"], "errors": {}})
            if request.parse_error is not None or not isinstance(request.body, dict):
                return _bad(messages=["Unexpected character in the JSON body."])
        if "key" in request.params and request.params["key"] not in self._issues:
            return _bad(messages=["Issue does not exist or you do not have permission to see it."], status=404)
        handler = getattr(self, "_" + request.route.replace(".", "_"))
        response: Response = handler(request)
        return response

    # ------------------------------------------------------------------ routes (lock held)

    def _public(self, issue: dict[str, Any], fields: list[str] | None = None) -> dict[str, Any]:
        out = {k: v for k, v in issue.items() if not k.startswith("_")}
        if fields is not None:
            out["fields"] = {k: v for k, v in issue["fields"].items() if k in fields}
        return json.loads(json.dumps(out))

    def _issue_create(self, request: Request) -> Response:
        fields = request.body.get("fields")
        if not isinstance(fields, dict):
            return _bad(messages=["Issue must be created with fields."])
        errors: dict[str, str] = {}
        project = fields.get("project")
        project_key = project.get("key") if isinstance(project, dict) else None
        if not isinstance(project_key, str) or project_key.upper() not in self.projects:
            errors["project"] = "valid project is required"
        issuetype = fields.get("issuetype")
        type_name = issuetype.get("name") if isinstance(issuetype, dict) else None
        if type_name not in self.issue_types:
            errors["issuetype"] = "valid issue type is required"
        summary = fields.get("summary")
        if not isinstance(summary, str) or not summary.strip():
            errors["summary"] = "You must specify a summary of the issue."
        elif len(summary) > 255:
            errors["summary"] = "Summary must be less than 255 characters."
        elif "\n" in summary or "\r" in summary:
            errors["summary"] = "The summary is invalid because it contains newline characters."
        description = fields.get("description")
        if description is not None and not isinstance(description, str):
            errors["description"] = "Operation value must be a string"
        elif isinstance(description, str) and len(description) > 32767:
            errors["description"] = "The entered text is too long. It exceeds the allowed limit of 32,767 characters."
        labels = fields.get("labels") or []
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            errors["labels"] = "Operation value must be a string"
        else:
            for label in labels:
                if not label or " " in label:
                    errors["labels"] = f"The label '{label}' contains spaces which is invalid."
                elif len(label) > 255:
                    errors["labels"] = "The label must not exceed 255 characters."
        if errors:
            return _bad(errors)
        project_key = str(project_key).upper()
        self._counters[project_key] = self._counters.get(project_key, 0) + 1
        self._ids += 1
        key = f"{project_key}-{self._counters[project_key]}"
        issue = {
            "id": str(self._ids),
            "key": key,
            "self": f"{self.base_url}/rest/api/2/issue/{self._ids}",
            "fields": {
                "project": {"key": project_key},
                "summary": summary,
                "description": description,
                "issuetype": {"name": type_name},
                "labels": list(labels),
                "status": dict(STATUSES["To Do"]),
                "created": _now(),
            },
            "_created": time.monotonic(),
        }
        self._issues[key] = issue
        self._comments[key] = []
        self._accept({"kind": "issue", "key": key})
        return Response(201, {"id": issue["id"], "key": key, "self": issue["self"]})

    def _issue_get(self, request: Request) -> Response:
        return Response(200, self._public(self._issues[request.params["key"]]))

    def _match(self, jql: str, *, bounded: bool) -> tuple[list[dict[str, Any]] | None, str | None]:
        order = _ORDER.search(jql)
        newest_first = True
        if order:
            newest_first = (order.group("dir") or "ASC").upper() == "DESC"
            jql = jql[: order.start()]
        if not jql.strip():
            if bounded:
                return None, (
                    "Unbounded JQL queries are not allowed here. Please add a search restriction to your query."
                )
            clauses: list[tuple[str, str]] = []
        else:
            clauses = []
            for part in re.split(r"\s+AND\s+", jql.strip(), flags=re.IGNORECASE):
                match = _CLAUSE.match(part)
                if not match:
                    return None, f"Error in the JQL Query: Expecting operator but got '{part.strip()}'."
                value = match.group("q") if match.group("q") is not None else match.group("bare")
                clauses.append((match.group("field").lower(), value))
        fields_of = {
            "project": lambda i: [i["fields"]["project"]["key"]],
            "labels": lambda i: i["fields"]["labels"],
            "key": lambda i: [i["key"]],
            "status": lambda i: [i["fields"]["status"]["name"]],
            "statuscategory": lambda i: [i["fields"]["status"]["statusCategory"]["name"]],
        }
        for name, value in clauses:
            if name not in fields_of:
                return None, f"Field '{name}' does not exist or you do not have permission to view it."
            if name == "project" and value.upper() not in self.projects:
                return None, f"The value '{value}' does not exist for the field 'project'."
        now = time.monotonic()
        found = [
            i
            for i in self._issues.values()
            if now - i["_created"] >= self.search_lag
            and all(value.lower() in (v.lower() for v in fields_of[name](i)) for name, value in clauses)
        ]
        found.sort(key=lambda i: int(i["id"]), reverse=newest_first)
        return found, None

    def _search_jql(self, request: Request) -> Response:
        if not self.cloud:
            return self.not_found(request)
        jql = request.query.get("jql", "")
        found, error = self._match(jql, bounded=True)
        if found is None:
            return _bad(messages=[error or "bad JQL"])
        fields = [f.strip() for f in request.query.get("fields", "").split(",") if f.strip()] or ["id"]
        limit = max(1, min(int(request.query.get("maxResults", 50) or 50), 5000))
        return Response(
            200, {"issues": [self._public(i, fields) for i in found[:limit]], "isLast": len(found) <= limit}
        )

    def _search(self, request: Request) -> Response:
        if self.cloud:
            return _bad(
                messages=[
                    "The requested API has been removed. Please migrate to the /rest/api/3/search/jql "
                    "API. A full migration guideline is available at "
                    "https://developer.atlassian.com/changelog/#CHANGE-2046"
                ],
                status=410,
            )
        args = dict(request.query)
        if request.verb == "POST" and isinstance(request.body, dict):
            args.update({k: v for k, v in request.body.items()})
        found, error = self._match(str(args.get("jql", "")), bounded=False)
        if found is None:
            return _bad(messages=[error or "bad JQL"])
        fields = args.get("fields")
        if isinstance(fields, str):
            fields = [f.strip() for f in fields.split(",") if f.strip()]
        limit = int(args.get("maxResults", 50) or 50)
        return Response(
            200,
            {
                "startAt": 0,
                "maxResults": limit,
                "total": len(found),
                "issues": [self._public(i, fields or None) for i in found[:limit]],
            },
        )

    def _comment_list(self, request: Request) -> Response:
        comments = list(self._comments[request.params["key"]])
        if request.query.get("orderBy") == "-created":
            comments.reverse()
        limit = int(request.query.get("maxResults", 5000) or 5000)
        return Response(200, {"startAt": 0, "maxResults": limit, "total": len(comments), "comments": comments[:limit]})

    def _comment_create(self, request: Request) -> Response:
        body = request.body.get("body")
        if not isinstance(body, str) or not body.strip():
            return _bad({"comment": "Comment body can not be empty!"})
        if len(body) > 32767:
            return _bad({"comment": "The entered text is too long. It exceeds the allowed limit of 32,767 characters."})
        self._ids += 1
        key = request.params["key"]
        comment = {
            "id": str(self._ids),
            "body": body,
            "author": {"emailAddress": self.user},
            "created": _now(),
            "self": f"{self.base_url}/rest/api/2/issue/{key}/comment/{self._ids}",
        }
        self._comments[key].append(comment)
        self._accept({"kind": "comment", "key": key, "id": comment["id"]})
        return Response(201, comment)

    def _available(self, issue: dict[str, Any]) -> list[dict[str, Any]]:
        current = issue["fields"]["status"]["name"]
        if current == "Done":
            ids = ["11"]
        else:
            ids = [tid for tid, to in TRANSITIONS.items() if to != current and tid != "11"]
        return [{"id": tid, "name": TRANSITIONS[tid], "to": STATUSES[TRANSITIONS[tid]]} for tid in ids]

    def _transitions_list(self, request: Request) -> Response:
        return Response(200, {"transitions": self._available(self._issues[request.params["key"]])})

    def _transitions_do(self, request: Request) -> Response:
        issue = self._issues[request.params["key"]]
        transition = request.body.get("transition")
        tid = str(transition.get("id")) if isinstance(transition, dict) else None
        if tid not in {t["id"] for t in self._available(issue)}:
            return _bad(messages=[f"Transition id '{tid}' is not valid for this issue."])
        issue["fields"]["status"] = dict(STATUSES[TRANSITIONS[tid]])
        self._accept({"kind": "transition", "key": issue["key"], "to": TRANSITIONS[tid]})
        return Response(204, None)
