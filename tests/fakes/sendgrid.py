"""A local fake of SendGrid's v3 Mail Send API (``POST /v3/mail/send``).

Validates what SendGrid requires (Bearer API key, JSON body, ``from``, at least one
personalization with ``to``, a subject, non-empty ``content`` with ``text/plain``
first, unique recipients, no reserved ``headers``, string ``custom_args``) and answers
like SendGrid: ``202`` with an empty body and an ``X-Message-Id`` header; ``400`` with
``{"errors": [{"message", "field", "help"}]}``; ``401`` for a bad key; ``403`` for a
``from`` address that is not a verified sender; ``429`` with ``X-RateLimit-*`` headers.

Usage::

    with FakeSendGrid() as sg:
        settings = {"provider": "sendgrid", "api_key": sg.api_key, "api_url": sg.url,
                    "from": "ci@example.com", "to": "oncall@example.com"}
        ...
        [mail] = sg.mails          # dicts: message_id, from, to, subject, text, html, headers, custom_args, body

Faults (from :class:`tests.fakes.base.FakeServer`): ``fail_next``, ``rate_limit_next``
(``Retry-After`` omitted unless ``with_retry_after=True``; ``X-RateLimit-Reset`` always),
``respond_next``, ``delay_next``, ``drop_next``, ``fail_after_accept``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable
from typing import Any

from .base import FakeServer, Fault, Request, Response

__all__ = ["FakeSendGrid", "RESERVED_HEADERS"]

RESERVED_HEADERS = frozenset(
    {
        "x-sg-id",
        "x-sg-eid",
        "received",
        "dkim-signature",
        "content-type",
        "content-transfer-encoding",
        "to",
        "from",
        "subject",
        "reply-to",
        "cc",
        "bcc",
    }
)
_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$|^[^@\s<>]+@localhost$")
_CONTENT_ORDER = "If present, text/plain must be first, followed by text/html, followed by any other content."


def _err(message: str, field: str | None = None) -> dict[str, Any]:
    return {"message": message, "field": field, "help": None}


class FakeSendGrid(FakeServer):
    """A fake SendGrid v3 Mail Send endpoint on ``127.0.0.1``. See the module docstring."""

    noun = "mail"

    def __init__(
        self, api_key: str = "SG.fake-key.secret", port: int = 0, *, verified_senders: Iterable[str] | None = None
    ):
        super().__init__(port)
        self.api_key = api_key
        self.verified_senders = None if verified_senders is None else {s.lower() for s in verified_senders}
        """When set, only these ``from`` addresses are accepted (others get 403, like SendGrid)."""
        self._seq = 0

    @property
    def url(self) -> str:
        """The ``api_url`` setting (the channel appends ``/v3/mail/send``)."""
        return self.base_url

    @property
    def mails(self) -> list[dict[str, Any]]:
        """Accepted mails, oldest first."""
        with self._cond:
            return self._items()

    # ------------------------------------------------------------------ FakeServer hooks

    def route(self, request: Request) -> str | None:
        if request.path.rstrip("/") == "/v3/mail/send":
            return "mail.send"
        return None

    def not_found(self, request: Request) -> Response:
        return Response(404, {"errors": [_err("not found")]})

    def error_response(self, status: int, request: Request) -> Response:
        return Response(status, {"errors": [_err("internal server error" if status == 500 else "service unavailable")]})

    def rate_limit_response(self, fault: Fault, request: Request) -> Response:
        wait = fault.retry_after if fault.retry_after is not None else 1
        headers = {
            "X-RateLimit-Limit": "600",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(int(time.time() + wait + 0.999)),
        }
        if fault.extra.get("with_retry_after"):
            headers["Retry-After"] = str(int(wait))
        return Response(429, {"errors": [_err("too many requests")]}, headers)

    def rate_limit_next(
        self, n: int = 1, retry_after: float | None = 1, *, route: str | None = None, with_retry_after: bool = False
    ) -> None:
        """The next ``n`` requests answer 429 with ``X-RateLimit-Reset`` ``retry_after`` seconds ahead."""
        self.add_fault(
            Fault("ratelimit", route=route, retry_after=retry_after, extra={"with_retry_after": with_retry_after}), n
        )

    def parse(self, request: Request) -> Any:
        if not request.raw:
            raise ValueError("empty body")
        return json.loads(request.raw.decode("utf-8"))

    def handle(self, request: Request) -> Response:
        if request.verb != "POST":
            return Response(405, {"errors": [_err("method not allowed")]})
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or key.strip() != self.api_key:
            return Response(401, {"errors": [_err("The provided authorization grant is invalid, expired, or revoked")]})
        if request.content_type != "application/json":
            return Response(415, {"errors": [_err("Content-Type should be application/json.")]})
        if request.parse_error is not None or not isinstance(request.body, dict):
            return Response(400, {"errors": [_err("Bad Request", None)]})
        errors = self.validate(request.body)
        if errors:
            return Response(400, {"errors": errors})
        body = request.body
        sender = str(body["from"]["email"]).lower()
        if self.verified_senders is not None and sender not in self.verified_senders:
            return Response(
                403,
                {
                    "errors": [
                        _err(
                            "The from address does not match a verified Sender Identity. Mail cannot be sent until this "
                            "error is resolved.",
                            "from",
                        )
                    ]
                },
            )
        self._seq += 1
        message_id = f"fake{self._seq:06d}SG{int(time.time())}"
        content = {c["type"]: c["value"] for c in body["content"]}
        personalization = body["personalizations"][0]
        mail = {
            "message_id": message_id,
            "from": body["from"],
            "to": [t["email"] for p in body["personalizations"] for t in p["to"]],
            "subject": personalization.get("subject") or body.get("subject"),
            "text": content.get("text/plain"),
            "html": content.get("text/html"),
            "headers": dict(body.get("headers") or {}),
            "custom_args": dict(body.get("custom_args") or {}),
            "body": body,
        }
        self._accept(mail)
        return Response(202, "", {"X-Message-Id": message_id}, content_type="text/plain; charset=utf-8")

    # ------------------------------------------------------------------ validation

    @staticmethod
    def validate(body: dict[str, Any]) -> list[dict[str, Any]]:
        """SendGrid's parameter checks (the ones Tocsin can trip); empty when valid."""
        errors: list[dict[str, Any]] = []
        sender = body.get("from")
        if not isinstance(sender, dict) or not isinstance(sender.get("email"), str):
            errors.append(
                _err(
                    "The from object must be provided for every email send. It is an object that "
                    "requires the email parameter, but may also contain a name parameter.",
                    "from",
                )
            )
        elif not _EMAIL.match(sender["email"]):
            errors.append(_err("The from email does not contain a valid address.", "from.email"))
        personalizations = body.get("personalizations")
        if not isinstance(personalizations, list) or not personalizations:
            errors.append(_err("You must have at least one personalization.", "personalizations"))
            personalizations = []
        total = 0
        every_has_subject = bool(personalizations)
        for i, p in enumerate(personalizations):
            where = f"personalizations.{i}"
            to = p.get("to") if isinstance(p, dict) else None
            if not isinstance(to, list) or not to:
                errors.append(
                    _err(
                        "The to array is required for all personalization objects, and must have at "
                        "least one email object with a valid email address.",
                        f"{where}.to",
                    )
                )
                to = []
            seen: set[str] = set()
            for j, rcpt in enumerate(to + list(p.get("cc") or []) + list(p.get("bcc") or [])):
                email = rcpt.get("email") if isinstance(rcpt, dict) else None
                if not isinstance(email, str) or not _EMAIL.match(email):
                    errors.append(_err("Does not contain a valid address.", f"{where}.to.{j}.email"))
                    continue
                if email.lower() in seen:
                    errors.append(
                        _err(
                            f"Each email address in the personalization block should be unique between "
                            f"to, cc, and bcc. We found the first duplicate instance of [{email}] in "
                            f"the {where}.to field.",
                            f"{where}.to",
                        )
                    )
                seen.add(email.lower())
                total += 1
            if not (isinstance(p, dict) and p.get("subject")):
                every_has_subject = False
        if total > 1000:
            errors.append(
                _err("There is a limit of 1000 total recipients (to + cc + bcc) per request.", "personalizations")
            )
        if not body.get("template_id") and not every_has_subject:
            subject = body.get("subject")
            if not isinstance(subject, str) or not subject.strip():
                errors.append(
                    _err(
                        "The subject is required. You can get around this requirement if you use a "
                        "template with a subject defined or if every personalization has a subject "
                        "defined.",
                        "subject",
                    )
                )
            elif "\n" in subject or "\r" in subject:
                errors.append(_err("The subject must not contain line breaks.", "subject"))
        return errors + _content_and_header_errors(body)


def _content_and_header_errors(body: dict[str, Any]) -> list[dict[str, Any]]:
    """SendGrid's checks of ``content``, ``headers`` and ``custom_args`` (part of :meth:`FakeSendGrid.validate`)."""
    errors: list[dict[str, Any]] = []
    content = body.get("content")
    if not body.get("template_id"):
        if not isinstance(content, list) or not content:
            errors.append(
                _err(
                    "Unless a valid template_id is provided, the content array is required. "
                    "There must be at least one content object with a type and value.",
                    "content",
                )
            )
            content = []
        types = []
        for i, item in enumerate(content):
            if not isinstance(item, dict) or not isinstance(item.get("type"), str) or not item["type"]:
                errors.append(
                    _err("The content type must be a string at least one character in length.", f"content.{i}.type")
                )
                continue
            if not isinstance(item.get("value"), str) or not item["value"]:
                errors.append(
                    _err("The content value must be a string at least one character in length.", f"content.{i}.value")
                )
            types.append(item["type"])
        if (
            "text/plain" in types
            and types[0] != "text/plain"
            or "text/html" in types
            and types.index("text/html") > ("text/plain" in types)
        ):
            errors.append(_err(_CONTENT_ORDER, "content"))
    headers = body.get("headers")
    if headers is not None:
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            errors.append(_err("The headers parameter must be an object of string keys and values.", "headers"))
        else:
            reserved = sorted(k for k in headers if k.lower() in RESERVED_HEADERS)
            if reserved:
                errors.append(
                    _err(f"The following header(s) are reserved and cannot be used: {', '.join(reserved)}", "headers")
                )
            if any("\n" in v or "\r" in v for v in headers.values()):
                errors.append(_err("Header values must not contain line breaks.", "headers"))
    custom_args = body.get("custom_args")
    if custom_args is not None:
        if not isinstance(custom_args, dict) or not all(isinstance(v, str) for v in custom_args.values()):
            errors.append(_err("Custom args must be an object with string values.", "custom_args"))
        elif len(json.dumps(custom_args)) > 10_000:
            errors.append(_err("The custom_args may not exceed 10,000 bytes.", "custom_args"))
    return errors
