"""A local fake of Microsoft Teams' two webhook kinds, answering the way each does.

Routes::

    POST /workflows/{id}/triggers/manual/paths/invoke?api-version=...&sig=...   "workflow"   202, empty body
    POST /webhookb2/{group}@{tenant}/IncomingWebhook/{id}/{owner}             "connector"  200, body "1"

Both take ``{"type": "message", "attachments": [{"contentType":
"application/vnd.microsoft.card.adaptive", "content": <AdaptiveCard>}]}`` as
JSON (``Content-Type: application/json``) and at most 28 KB. The card is
checked against the Adaptive Card schema for the parts Tocsin uses (element
and action types, TextBlock/FactSet/Action.OpenUrl properties, enum values,
features newer than the card's ``version``, Teams' 1.5 ceiling). The fake is
stricter than a Workflows trigger, which accepts any body with 202 and fails
the flow run later; here a bad card is a 400 so tests see it.

Errors as Teams gives them: Workflows answer JSON ``{"error": {"code",
"message"}}`` (401 bad ``sig``, 404 unknown workflow, 400 bad content, 429
with ``Retry-After``); the legacy connector answers text (400 for a bad
payload) and reports throttling **inside a 200**: ``rate_limit_next()`` on the
connector route gives ``200 "Microsoft Teams endpoint returned HTTP error 429
with ContextId ..."``; on the workflow route a real 429.

Usage::

    with FakeTeams() as teams:
        settings = {"webhook_url": teams.workflow_url}     # or teams.connector_url
        ...
        teams.cards      # [{"target": "workflow", "card": {...}, "payload": {...}, "received": t}]
"""

from __future__ import annotations

import re
from typing import Any

from .base import FakeServer, Fault, Request, Response, retry_after_header

__all__ = ["FakeTeams", "validate_teams_message", "CARD_CONTENT_TYPE"]

CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
MAX_BYTES = 28 * 1024
_WORKFLOW = re.compile(r"^/workflows/(?P<id>[0-9a-f]+)/triggers/manual/paths/invoke/?$")
_CONNECTOR = re.compile(
    r"^/webhookb2/(?P<group>[^/@]+)@(?P<tenant>[^/]+)/IncomingWebhook/(?P<id>[^/]+)/"
    r"(?P<owner>[^/]+)/?$"
)
_VERSIONS = ("1.0", "1.1", "1.2", "1.3", "1.4", "1.5")  # Teams renders up to 1.5
_ELEMENTS = {
    "TextBlock": "1.0",
    "FactSet": "1.0",
    "Container": "1.0",
    "ColumnSet": "1.0",
    "Image": "1.0",
    "ImageSet": "1.0",
    "ActionSet": "1.2",
    "RichTextBlock": "1.2",
    "Table": "1.5",
}
_ACTIONS = {
    "Action.OpenUrl": "1.0",
    "Action.Submit": "1.0",
    "Action.ShowCard": "1.0",
    "Action.ToggleVisibility": "1.2",
    "Action.Execute": "1.4",
}
_ENUMS = {
    "weight": {"default", "lighter", "bolder"},
    "size": {"default", "small", "medium", "large", "extralarge"},
    "color": {"default", "dark", "light", "accent", "good", "warning", "attention"},
    "spacing": {"none", "small", "default", "medium", "large", "extralarge", "padding"},
    "horizontalAlignment": {"left", "center", "right"},
}
_TEXTBLOCK_SINCE = {"style": "1.5", "fontType": "1.2"}


def _v(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def _check_element(el: Any, where: str, version: str) -> str | None:
    if not isinstance(el, dict) or not isinstance(el.get("type"), str):
        return f"{where}: an element must be an object with a type"
    kind = el["type"]
    if kind not in _ELEMENTS:
        return f"{where}: unknown element type '{kind}'"
    if _v(_ELEMENTS[kind]) > _v(version):
        return f"{where}: {kind} needs card version {_ELEMENTS[kind]} (card is {version})"
    for key, allowed in _ENUMS.items():
        if key in el and (not isinstance(el[key], str) or el[key].lower() not in allowed):
            return f"{where}.{key}: '{el[key]}' is not one of {sorted(allowed)}"
    if kind == "TextBlock":
        if not isinstance(el.get("text"), str):
            return f"{where}.text: required string"
        for key, since in _TEXTBLOCK_SINCE.items():
            if key in el and _v(since) > _v(version):
                return f"{where}.{key}: needs card version {since} (card is {version})"
        for key in ("wrap", "isSubtle"):
            if key in el and not isinstance(el[key], bool):
                return f"{where}.{key}: must be a boolean"
    elif kind == "FactSet":
        facts = el.get("facts")
        if not isinstance(facts, list):
            return f"{where}.facts: required array"
        for j, fact in enumerate(facts):
            if (
                not isinstance(fact, dict)
                or not isinstance(fact.get("title"), str)
                or not isinstance(fact.get("value"), str)
            ):
                return f"{where}.facts[{j}]: a fact needs string title and value"
    elif kind in ("Container", "Column"):
        for j, item in enumerate(el.get("items") or []):
            why = _check_element(item, f"{where}.items[{j}]", version)
            if why:
                return why
    return None


def _check_action(action: Any, where: str, version: str) -> str | None:
    if not isinstance(action, dict) or not isinstance(action.get("type"), str):
        return f"{where}: an action must be an object with a type"
    kind = action["type"]
    if kind not in _ACTIONS:
        return f"{where}: unknown action type '{kind}'"
    if _v(_ACTIONS[kind]) > _v(version):
        return f"{where}: {kind} needs card version {_ACTIONS[kind]} (card is {version})"
    if kind == "Action.OpenUrl":
        url = action.get("url")
        if not isinstance(url, str) or not re.match(r"^(https?|mailto|tel|msteams):", url):
            return f"{where}.url: required absolute URL"
    if "title" in action and not isinstance(action["title"], str):
        return f"{where}.title: must be a string"
    return None


def validate_teams_message(body: Any) -> str | None:
    """Check a webhook body and its Adaptive Card. ``None`` when valid, else why not."""
    if not isinstance(body, dict):
        return "body must be a JSON object"
    if body.get("type") != "message":
        return "type must be 'message'"
    attachments = body.get("attachments")
    if not isinstance(attachments, list) or not attachments:
        return "attachments must be a non-empty array"
    for i, att in enumerate(attachments):
        where = f"attachments[{i}]"
        if not isinstance(att, dict) or att.get("contentType") != CARD_CONTENT_TYPE:
            return f"{where}.contentType must be '{CARD_CONTENT_TYPE}'"
        card = att.get("content")
        if not isinstance(card, dict) or card.get("type") != "AdaptiveCard":
            return f"{where}.content.type must be 'AdaptiveCard'"
        version = card.get("version")
        if version not in _VERSIONS:
            return f"{where}.content.version: '{version}' is not supported (Teams renders {', '.join(_VERSIONS)})"
        elements = card.get("body", [])
        if not isinstance(elements, list):
            return f"{where}.content.body must be an array"
        for j, el in enumerate(elements):
            why = _check_element(el, f"{where}.content.body[{j}]", version)
            if why:
                return why
        actions = card.get("actions", [])
        if not isinstance(actions, list):
            return f"{where}.content.actions must be an array"
        for j, action in enumerate(actions):
            why = _check_action(action, f"{where}.content.actions[{j}]", version)
            if why:
                return why
    return None


class FakeTeams(FakeServer):
    """Fake Teams webhooks (a Workflows trigger and a legacy connector). See the module docstring.

    Attributes:
        workflow_id, sig: the Workflows trigger's id and its ``sig`` query parameter (the credential).
        connector_id: the legacy connector's id.
    """

    noun = "card"

    def __init__(
        self,
        port: int = 0,
        *,
        workflow_id: str = "0123456789abcdef0123456789abcdef",
        sig: str = "fake-sig-Zx9",
        connector_id: str = "f00dfeedcafe",
    ):
        super().__init__(port)
        self.workflow_id = workflow_id
        self.sig = sig
        self.connector_id = connector_id
        self.tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"

    @property
    def workflow_url(self) -> str:
        """A Workflows ("Teams webhook") trigger URL, signed."""
        return (
            f"{self.base_url}/workflows/{self.workflow_id}/triggers/manual/paths/invoke"
            f"?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={self.sig}"
        )

    @property
    def connector_url(self) -> str:
        """A legacy Office 365 connector (Incoming Webhook) URL."""
        return (
            f"{self.base_url}/webhookb2/a1b2c3d4-0000-4000-8000-000000000001@{self.tenant}"
            f"/IncomingWebhook/{self.connector_id}/e5f6a7b8-0000-4000-8000-000000000002"
        )

    @property
    def url(self) -> str:
        return self.workflow_url

    @property
    def cards(self) -> list[dict[str, Any]]:
        """Accepted posts, oldest first: ``target``, ``card`` (the first attachment's content), ``payload``,
        ``received``."""
        with self._cond:
            return self._items()

    # ------------------------------------------------------------------ FakeServer hooks

    def route(self, request: Request) -> str | None:
        for name, pattern in (("workflow", _WORKFLOW), ("connector", _CONNECTOR)):
            match = pattern.match(request.path)
            if match:
                request.params = match.groupdict()
                return name
        return None

    def not_found(self, request: Request) -> Response:
        return Response(404, "Not Found", content_type="text/plain; charset=utf-8")

    @staticmethod
    def _workflow_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
        return Response(status, {"error": {"code": code, "message": message}}, headers or {})

    @staticmethod
    def _text(status: int, text: str) -> Response:
        return Response(status, text, content_type="text/plain; charset=utf-8")

    def error_response(self, status: int, request: Request) -> Response:
        if request.route == "workflow":
            return self._workflow_error(
                status,
                "ServiceUnavailable" if status == 503 else "InternalServerError",
                "The server did not respond in time.",
            )
        return self._text(
            status,
            f"Webhook message delivery failed with error: Microsoft Teams endpoint returned "
            f"HTTP error {status} with ContextId tcid=0,server=fake,cv=x",
        )

    def rate_limit_response(self, fault: Fault, request: Request) -> Response:
        if request.route == "workflow":
            return self._workflow_error(
                429,
                "TooManyRequests",
                "Rate limit is exceeded. Try again later.",
                retry_after_header(fault.retry_after),
            )
        # Legacy connectors throttle inside a 200.
        return self._text(
            200, "Microsoft Teams endpoint returned HTTP error 429 with ContextId tcid=0,server=msgapi-fake,cv=AbCdEf.0"
        )

    def handle(self, request: Request) -> Response:
        if request.route == "workflow":
            if request.params["id"] != self.workflow_id:
                return self._workflow_error(
                    404, "WorkflowNotFound", f"The workflow '{request.params['id']}' could not be found."
                )
            if request.query.get("sig") != self.sig:
                return self._workflow_error(
                    401, "DirectApiInvalidAuthorizationSignature", "The provided authorization signature is not valid."
                )
            if request.verb != "POST":
                return self._workflow_error(405, "MethodNotAllowed", "Only POST is allowed.")
        else:
            if request.params["id"] != self.connector_id:
                return self._text(404, "Webhook not found or has been removed")
            if request.verb != "POST":
                return self._text(405, "Method Not Allowed")
        why = None
        if len(request.raw) > MAX_BYTES:
            return (
                self._workflow_error(413, "RequestEntityTooLarge", "The message is too large.")
                if request.route == "workflow"
                else self._text(413, "Message size too large")
            )
        if request.content_type != "application/json":
            why = f"unsupported content type '{request.content_type}'"
        elif request.parse_error is not None:
            why = f"invalid JSON: {request.parse_error}"
        else:
            why = validate_teams_message(request.body)
        if why:
            if request.route == "workflow":
                return self._workflow_error(400, "InvalidRequestContent", why)
            return self._text(400, f"Bad payload received by generic incoming webhook: {why}")
        self._accept(
            {
                "target": request.route,
                "card": request.body["attachments"][0]["content"],
                "payload": request.body,
                "received": request.time,
            }
        )
        if request.route == "workflow":
            return Response(202, None)
        return self._text(200, "1")
