"""A local fake of Twilio's Messages API (create and list), for the ``sms`` channel.

Routes::

    POST /2010-04-01/Accounts/{AccountSid}/Messages.json   "create"  201 + message resource
    GET  /2010-04-01/Accounts/{AccountSid}/Messages.json   "list"    200 {"messages": [...newest first], ...}

Validated like Twilio: HTTP basic auth with the account SID and auth token
(401, code 20003); the path's account must be the authenticated one (404,
20404); a form-encoded body (anything else carries no parameters); ``To``
required (21604) and a valid E.164 number (21211), not unsubscribed (21610);
``From`` required unless ``MessagingServiceSid`` (21603), one of the account's
numbers (21606) or a known service (21701); ``Body`` required (21602) and at
most 1600 characters (21617). Errors are JSON ``{"code", "message",
"more_info", "status"}``. The list honours ``To``, ``From`` and ``PageSize``.

Usage::

    with FakeTwilio() as twilio:
        settings = {"provider": "twilio", "account_sid": twilio.account_sid,
                    "auth_token": twilio.auth_token, "from": twilio.from_number,
                    "to": ["+15551230001"], "api_url": twilio.url}
        ...
        twilio.messages     # accepted messages: sid, to, from, body, num_segments, received...

Faults as for every fake; ``rate_limit_next(retry_after=2)`` answers 429 with
code 20429 and ``Retry-After: 2`` (``retry_after=None``: no header).
``invalid_numbers`` and ``unsubscribed`` make chosen numbers fail with 21211 and 21610.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl

from .base import FakeServer, Fault, Request, Response, retry_after_header

__all__ = ["FakeTwilio", "segments"]

_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<sid>[^/]+)/Messages\.json$")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_GSM7 = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    "ÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà^{}\\[~]|€"
)


def segments(body: str) -> int:
    """How many SMS segments ``body`` costs (GSM-7: 160/153 characters, else UCS-2: 70/67)."""
    single, multi = (160, 153) if set(body) <= _GSM7 else (70, 67)
    return 1 if len(body) <= single else -(-len(body) // multi)


class FakeTwilio(FakeServer):
    """A fake Twilio Messages API. See the module docstring.

    Attributes:
        account_sid, auth_token: the credentials it accepts.
        numbers: the account's sending numbers; ``from_number`` is the first.
        services: the account's Messaging Service SIDs.
        invalid_numbers, unsubscribed: recipients answered 21211 / 21610.
    """

    noun = "message"

    def __init__(
        self,
        port: int = 0,
        *,
        account_sid: str = "AC" + "0123456789abcdef" * 2,
        auth_token: str = "fake-auth-token-5f3a",
        numbers: Iterable[str] = ("+15005550006",),
        services: Iterable[str] = ("MG" + "fedcba9876543210" * 2,),
        invalid_numbers: Iterable[str] = (),
        unsubscribed: Iterable[str] = (),
    ):
        super().__init__(port)
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.numbers = list(numbers)
        self.services = list(services)
        self.invalid_numbers = set(invalid_numbers)
        self.unsubscribed = set(unsubscribed)
        self._seq = 0

    @property
    def from_number(self) -> str:
        """The account's first sending number."""
        return self.numbers[0]

    @property
    def messages_url(self) -> str:
        """The Messages resource URL of the account."""
        return f"{self.base_url}/2010-04-01/Accounts/{self.account_sid}/Messages.json"

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Accepted messages, oldest first (the resource fields plus ``received``)."""
        with self._cond:
            return self._items()

    # ------------------------------------------------------------------ FakeServer hooks

    def route(self, request: Request) -> str | None:
        match = _PATH.match(request.path)
        if match is None:
            return None
        request.params = match.groupdict()
        return {"POST": "create", "GET": "list"}.get(request.verb, "other")

    @staticmethod
    def _error(status: int, code: int, message: str, headers: dict[str, str] | None = None) -> Response:
        return Response(
            status,
            {
                "code": code,
                "message": message,
                "more_info": f"https://www.twilio.com/docs/errors/{code}",
                "status": status,
            },
            headers or {},
        )

    def not_found(self, request: Request) -> Response:
        return self._error(404, 20404, f"The requested resource {request.path} was not found")

    def parse(self, request: Request) -> Any:
        if request.content_type == "application/x-www-form-urlencoded" and request.raw:
            return dict(parse_qsl(request.raw.decode("utf-8"), keep_blank_values=True))
        return {}  # Twilio reads parameters from a form body only

    def error_response(self, status: int, request: Request) -> Response:
        return self._error(status, 20500, "An internal server error has occurred")

    def rate_limit_response(self, fault: Fault, request: Request) -> Response:
        return self._error(429, 20429, "Too Many Requests", retry_after_header(fault.retry_after))

    def _authenticated(self, request: Request) -> bool:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return user == self.account_sid and password == self.auth_token

    def handle(self, request: Request) -> Response:
        if not self._authenticated(request):
            return self._error(401, 20003, "Authenticate")
        if request.params["sid"] != self.account_sid:
            return self.not_found(request)
        if request.route == "list":
            return self._list(request)
        if request.route != "create":
            return self._error(405, 20004, "Method not allowed")
        return self._create(request)

    def _create(self, request: Request) -> Response:
        form = request.body or {}
        to, sender, service, body = (
            form.get("To", ""),
            form.get("From", ""),
            form.get("MessagingServiceSid", ""),
            form.get("Body", ""),
        )
        if not to:
            return self._error(400, 21604, "A 'To' phone number is required.")
        if not _E164.match(to) or to in self.invalid_numbers:
            return self._error(400, 21211, f"Invalid 'To' Phone Number: {to}")
        if to in self.unsubscribed:
            return self._error(400, 21610, "Attempt to send to unsubscribed recipient")
        if service:
            if service not in self.services:
                return self._error(400, 21701, f"The Messaging Service Sid {service} is invalid.")
            sender = self.from_number
        elif not sender:
            return self._error(400, 21603, "A 'From' phone number is required.")
        elif sender not in self.numbers:
            return self._error(
                400,
                21606,
                f"The From phone number {sender} is not a valid, SMS-capable inbound "
                "phone number or short code for your account.",
            )
        if not body:
            return self._error(400, 21602, "Message body is required.")
        if len(body) > 1600:
            return self._error(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
        self._seq += 1
        sid = "SM" + hashlib.md5(f"{self.account_sid}:{self._seq}".encode()).hexdigest()  # an id, not a security use
        resource = {
            "sid": sid,
            "account_sid": self.account_sid,
            "to": to,
            "from": sender,
            "messaging_service_sid": service or None,
            "body": body,
            "status": "queued",
            "num_segments": str(segments(body)),
            "num_media": "0",
            "direction": "outbound-api",
            "api_version": "2010-04-01",
            "price": None,
            "price_unit": "USD",
            "error_code": None,
            "error_message": None,
            "date_created": "Mon, 01 Jan 2024 00:00:00 +0000",
            "date_sent": None,
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json",
        }
        self._accept({**resource, "received": request.time})
        return Response(201, resource)

    def _list(self, request: Request) -> Response:
        query = request.query
        try:
            size = max(1, min(int(query.get("PageSize", "50")), 1000))
        except ValueError:
            return self._error(400, 20001, "Invalid PageSize")
        found = [
            {k: v for k, v in m.items() if k != "received"}
            for m in reversed(self._accepted)
            if (not query.get("To") or m["to"] == query["To"]) and (not query.get("From") or m["from"] == query["From"])
        ]
        return Response(
            200,
            {
                "messages": found[:size],
                "page": 0,
                "page_size": size,
                "start": 0,
                "end": min(size, len(found)) - 1,
                "first_page_uri": request.target,
                "next_page_uri": None,
                "previous_page_uri": None,
                "uri": request.target,
            },
        )
