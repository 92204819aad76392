"""The ``email`` channel: SendGrid's v3 Mail Send API or plain SMTP.

Settings (``provider: sendgrid``):
    ``api_key``, ``api_url`` (default ``https://api.sendgrid.com``), ``from``, ``to``
    (a string, comma-separated or not, or a list), ``timeout`` (seconds, default 10),
    ``subject_prefix`` (optional, e.g. ``"[tocsin] "``).

Settings (``provider: smtp``):
    ``host``, ``port`` (default 587 with ``starttls``, 465 with ``ssl``, else 25),
    ``username``, ``password``, ``starttls`` (bool), ``ssl`` (bool, implicit TLS),
    ``ca_file`` (a PEM bundle to verify the relay with, for private CAs), ``from``, ``to``,
    ``timeout``, ``subject_prefix``.

Without ``provider`` the channel picks ``smtp`` when ``host`` is set, else ``sendgrid``.

Every mail is ``multipart/alternative`` (plain text, then HTML with a severity colour
bar) and carries a ``Message-ID`` derived from the idempotency key
(``<sha256(key)[:32]@tocsin>``) and an ``X-Tocsin-Idempotency-Key`` header; SendGrid
sends also get ``custom_args`` with the key, so Event Webhook data can be correlated.

At-least-once corners (email has no server-side idempotency key):

* SendGrid: when the ``202`` answer is lost (timeout, connection reset after the
  request was written), the retry sends the mail again. SendGrid has no way to ask
  "did you accept a mail with this key?" before sending; the duplicate carries the
  same ``Message-ID``, so clients that dedupe on it (Gmail, most threading clients)
  show one mail, others show two.
* SMTP: the same when the connection drops after the final ``.`` was accepted but
  before the ``250`` reply was read. The same ``Message-ID`` limits the damage.
* SMTP with several recipients: when the relay refuses some recipients but accepts
  others, the mail is delivered to those accepted and the send counts as delivered
  (retrying would mail the accepted ones twice); the refusals are logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import logging
import smtplib
import ssl
import time
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import formataddr, formatdate, getaddresses, parseaddr
from typing import Any, Literal

import httpx
from sendgrid.helpers.mail import CustomArg, From, Header, Mail, To

from activities.channels.base import (
    Channel,
    ChannelDeps,
    ChannelError,
    SendContext,
    Sent,
    json_object,
    parse_retry_after,
)
from activities.channels.render import SEVERITY_COLOR, trim
from workflows.models import Message

__all__ = ["EmailChannel", "message_id_for", "render_text", "render_html", "email_subject"]

log = logging.getLogger(__name__)

DEFAULT_SENDGRID_URL = "https://api.sendgrid.com"
IDEMPOTENCY_HEADER = "X-Tocsin-Idempotency-Key"
_SAFE_SCHEMES = ("http://", "https://", "mailto:")


def message_id_for(idempotency_key: str) -> str:
    """The ``Message-ID`` of the mail for one idempotency key (stable across retries)."""
    return f"<{hashlib.sha256(idempotency_key.encode('utf-8')).hexdigest()[:32]}@tocsin>"


def _one_line(text: str) -> str:
    """Collapse whitespace, CR and LF included (no header injection)."""
    return " ".join(text.split())


def _header_safe(value: str) -> str:
    """A header value that is ASCII and on one line (or its SHA-256 when it is not ASCII)."""
    value = _one_line(value)
    if value.isascii():
        return value[:900]
    return "sha256:" + hashlib.sha256(value.encode("utf-8")).hexdigest()


def email_subject(message: Message, prefix: str = "") -> str:
    """The subject line: the title on one line, at most 200 characters."""
    return trim(_one_line(f"{prefix}{message.title}") or "(no title)", 200)


def render_text(message: Message) -> str:
    """The ``text/plain`` part."""
    lines = [f"[{message.severity.upper()}] {message.title}"]
    if message.text:
        lines += ["", message.text]
    if message.fields:
        lines.append("")
        width = min(max(len(f.title) for f in message.fields), 24)
        lines += [f"{f.title + ':':<{width + 1}} {f.value}" for f in message.fields]
    if message.links:
        lines.append("")
        lines += [f"{link.text}: {link.url}" for link in message.links]
    lines += ["", "-- ", f"Sent by Tocsin{f' ({message.source})' if message.source else ''}"]
    return "\n".join(lines) + "\n"


def _href(url: str) -> str | None:
    """The URL for an ``href`` when its scheme is harmless (no ``javascript:``), else None."""
    stripped = url.strip()
    return stripped if stripped.lower().startswith(_SAFE_SCHEMES) else None


def render_html(message: Message) -> str:
    """The ``text/html`` part: colour bar, title, text, a fields table and links; all text escaped."""
    esc = html.escape
    colour = f"#{SEVERITY_COLOR.get(message.severity, 0x999999):06X}"
    parts = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">',
        f"<title>{esc(message.title)}</title></head>",
        '<body style="margin:0;padding:16px;font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;'
        'font-size:14px;color:#1f2328;background:#ffffff">',
        '<table role="presentation" width="100%" cellpadding="0" cellspacing="0" '
        f'style="max-width:680px;border-collapse:collapse;border-left:6px solid {colour}">',
        '<tr><td style="padding:12px 16px">',
        f'<h2 style="margin:0 0 4px;font-size:18px">{esc(message.title)}</h2>',
        f'<p style="margin:0 0 12px;font-size:12px;color:#59636e">'
        f'<span style="color:{colour};font-weight:bold">{esc(message.severity.upper())}</span>'
        + (f" · {esc(message.source)}" if message.source else "")
        + "</p>",
    ]
    if message.text:
        parts.append(f'<div style="white-space:pre-wrap;margin:0 0 12px">{esc(message.text)}</div>')
    if message.fields:
        parts.append('<table cellpadding="4" cellspacing="0" style="border-collapse:collapse;margin:0 0 12px">')
        for fld in message.fields:
            parts.append(
                f'<tr><th align="left" style="padding:4px 12px 4px 0;color:#59636e;font-weight:600;'
                f'vertical-align:top">{esc(fld.title)}</th>'
                f'<td style="padding:4px 0;white-space:pre-wrap">{esc(fld.value)}</td></tr>'
            )
        parts.append("</table>")
    if message.links:
        items = []
        for link in message.links:
            href = _href(link.url)
            if href is None:
                items.append(f"{esc(link.text)}: {esc(link.url)}")
            else:
                items.append(f'<a href="{esc(href, quote=True)}" style="color:#0969da">{esc(link.text or href)}</a>')
        parts.append('<p style="margin:0 0 12px">' + " · ".join(items) + "</p>")
    parts += [
        "</td></tr></table>",
        '<p style="font-size:11px;color:#8c959f;margin:12px 0 0">Sent by Tocsin</p>',
        "</body></html>",
    ]
    return "\n".join(parts)


def _recipients(value: Any) -> list[str]:
    """``to`` as a list of distinct addresses (a string may hold several, comma-separated)."""
    items = [value] if isinstance(value, str) else list(value or [])
    out: list[str] = []
    for _name, addr in getaddresses([str(item) for item in items]):
        addr = addr.strip()
        if addr and addr.lower() not in {a.lower() for a in out}:
            out.append(addr)
    return out


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


class EmailChannel(Channel):
    """Sends each notification as one multipart email, through SendGrid or an SMTP relay."""

    type = "email"
    required = ("from", "to")

    def __init__(self, name: str, settings: Mapping[str, Any], deps: ChannelDeps):
        super().__init__(name, settings, deps)
        provider = str(self.settings.get("provider") or ("smtp" if self.settings.get("host") else "sendgrid"))
        if provider not in ("sendgrid", "smtp"):
            raise self._misconfigured(f"provider must be sendgrid or smtp, not {provider!r}")
        self.provider: Literal["sendgrid", "smtp"] = provider  # type: ignore[assignment]
        need = ("api_key",) if provider == "sendgrid" else ("host",)
        missing = [key for key in need if not self.settings.get(key)]
        if missing:
            raise self._misconfigured(f"missing setting(s) {', '.join(missing)} for provider {provider}")
        self._from_name, self._from_addr = parseaddr(str(self.settings["from"]))
        if "@" not in self._from_addr:
            raise self._misconfigured(f"'from' is not an email address: {self.settings['from']!r}")
        self._to = _recipients(self.settings["to"])
        bad = [addr for addr in self._to if "@" not in addr]
        if not self._to or bad:
            raise self._misconfigured(f"'to' needs email addresses (got {self.settings['to']!r})")
        self._timeout = float(self.settings.get("timeout", 10))
        self._prefix = str(self.settings.get("subject_prefix") or "")

    def _misconfigured(self, why: str) -> ChannelError:
        return ChannelError(f"channel '{self.name}' (email): {why}", retryable=False, kind="ChannelMisconfigured")

    async def send(self, message: Message, idempotency_key: str, attempt: int, ctx: SendContext | None = None) -> Sent:
        """Send one mail.

        Args:
            message: what to say.
            idempotency_key: stable across retries of this send; becomes the ``Message-ID``.
            attempt: Temporal's attempt number (email cannot check for an earlier delivery).
            ctx: unused (email has no edit or lifecycle).

        Returns:
            ``Sent`` with SendGrid's ``X-Message-Id`` or the ``Message-ID`` given to the relay.

        Raises:
            ChannelError: retryable for 429, 5xx, SMTP 4xx, timeouts and connection errors.
        """
        if self.provider == "sendgrid":
            return await self._send_sendgrid(message, idempotency_key)
        return await self._send_smtp(message, idempotency_key)

    def pace_key(self) -> str:
        if self.provider == "sendgrid":
            where = str(self.settings.get("api_url") or DEFAULT_SENDGRID_URL)
        else:
            where = f"{self.settings.get('host')}:{self.settings.get('port', '')}"
        return f"email:{self.provider}:{where}"

    # ------------------------------------------------------------------ SendGrid

    def sendgrid_body(self, message: Message, idempotency_key: str) -> dict[str, Any]:
        """The v3 Mail Send JSON for one message (built with sendgrid's helpers)."""
        mail = Mail(
            from_email=From(self._from_addr, self._from_name or None),
            to_emails=[To(addr) for addr in self._to],
            subject=email_subject(message, self._prefix),
            plain_text_content=render_text(message),
            html_content=render_html(message),
        )
        mail.header = [
            Header("Message-ID", message_id_for(idempotency_key)),
            Header(IDEMPOTENCY_HEADER, _header_safe(idempotency_key)),
        ]
        args = [CustomArg("tocsin_idempotency_key", idempotency_key[:1000])]
        if message.source:
            args.append(CustomArg("tocsin_source", message.source[:1000]))
        mail.custom_arg = args
        body: dict[str, Any] = mail.get()
        return body

    async def _send_sendgrid(self, message: Message, idempotency_key: str) -> Sent:
        base = str(self.settings.get("api_url") or DEFAULT_SENDGRID_URL).rstrip("/")
        body = self.sendgrid_body(message, idempotency_key)
        response = await self.request(
            "POST",
            f"{base}/v3/mail/send",
            "sendgrid mail/send",
            json=body,
            timeout=self._timeout,
            headers={
                "Authorization": f"Bearer {self.settings['api_key']}",
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
        )
        status = response.status_code
        if status in (200, 202):
            return Sent(message_id=response.headers.get("x-message-id") or message_id_for(idempotency_key))
        raise self._sendgrid_error(response)

    @staticmethod
    def _sendgrid_error(response: httpx.Response) -> ChannelError:
        status = response.status_code
        reasons: list[str] = []
        for err in json_object(response).get("errors") or []:
            if isinstance(err, dict) and err.get("message"):
                field = f"{err['field']}: " if err.get("field") else ""
                reasons.append(f"{field}{err['message']}")
        why = "; ".join(reasons) or response.text[:300] or response.reason_phrase
        what = "sendgrid mail/send"
        if status == 429:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            if retry_after is None:
                reset = response.headers.get("x-ratelimit-reset")
                try:
                    retry_after = max(0.0, float(reset) - time.time()) if reset else None
                except ValueError:
                    retry_after = None
            return ChannelError(
                f"{what}: rate limited (429)", retryable=True, retry_after=retry_after, kind="RateLimited"
            )
        if status >= 500 or status == 408:
            return ChannelError(f"{what}: server error {status}: {why}", retryable=True)
        if status in (401, 403):
            return ChannelError(
                f"{what}: bad credentials or sender not allowed ({status}): {why}",
                retryable=False,
                kind="BadCredentials",
            )
        return ChannelError(f"{what}: rejected ({status}): {why}", retryable=False, kind="SendGridRejected")

    # ------------------------------------------------------------------ SMTP

    def mime_message(self, message: Message, idempotency_key: str) -> EmailMessage:
        """The MIME message (``multipart/alternative``: plain text, then HTML)."""
        mail = EmailMessage()
        mail["From"] = formataddr((self._from_name, self._from_addr)) if self._from_name else self._from_addr
        mail["To"] = ", ".join(self._to)
        mail["Subject"] = email_subject(message, self._prefix)
        mail["Date"] = formatdate(localtime=False, usegmt=True)
        mail["Message-ID"] = message_id_for(idempotency_key)
        mail[IDEMPOTENCY_HEADER] = _header_safe(idempotency_key)
        mail["Auto-Submitted"] = "auto-generated"
        mail.set_content(render_text(message))
        mail.add_alternative(render_html(message), subtype="html")
        return mail

    def _tls_context(self) -> ssl.SSLContext:
        ca_file = self.settings.get("ca_file")
        return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)

    def _smtp_deliver(self, mail: EmailMessage) -> dict[str, tuple[int, bytes]]:
        """Blocking SMTP conversation (runs in a worker thread)."""
        use_ssl = _truthy(self.settings.get("ssl", False))
        starttls = _truthy(self.settings.get("starttls", False))
        port = int(self.settings.get("port") or (465 if use_ssl else 587 if starttls else 25))
        host = str(self.settings["host"])
        smtp: smtplib.SMTP
        if use_ssl:
            smtp = smtplib.SMTP_SSL(host, port, timeout=self._timeout, context=self._tls_context())
        else:
            smtp = smtplib.SMTP(host, port, timeout=self._timeout)
        try:
            smtp.ehlo()
            if starttls and not use_ssl:
                smtp.starttls(context=self._tls_context())
                smtp.ehlo()
            if self.settings.get("username"):
                smtp.login(str(self.settings["username"]), str(self.settings.get("password") or ""))
            return smtp.send_message(mail, from_addr=self._from_addr, to_addrs=self._to)
        finally:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()

    async def _send_smtp(self, message: Message, idempotency_key: str) -> Sent:
        mail = self.mime_message(message, idempotency_key)
        host = f"{self.settings['host']}:{self.settings.get('port', '')}".rstrip(":")
        what = f"smtp {host}"
        try:
            refused = await asyncio.to_thread(self._smtp_deliver, mail)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = {addr: code for addr, (code, _msg) in exc.recipients.items()}
            detail = ", ".join(
                f"{addr} ({code} {msg.decode(errors='replace') if isinstance(msg, bytes) else msg})"
                for addr, (code, msg) in exc.recipients.items()
            )
            transient = any(400 <= code < 500 for code in codes.values())
            raise ChannelError(
                f"{what}: all recipients refused: {detail}",
                retryable=transient,
                kind="ChannelRetryable" if transient else "SmtpRejected",
            ) from None
        except smtplib.SMTPResponseException as exc:
            # SMTPAuthenticationError, SMTPSenderRefused, SMTPDataError, SMTPHeloError, SMTPConnectError
            text = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
            code = int(exc.smtp_code)
            label = "authentication failed" if isinstance(exc, smtplib.SMTPAuthenticationError) else "refused"
            if 400 <= code < 500 or code == -1:
                raise ChannelError(f"{what}: temporary failure {code}: {text}", retryable=True) from None
            kind = "BadCredentials" if isinstance(exc, smtplib.SMTPAuthenticationError) else "SmtpRejected"
            raise ChannelError(f"{what}: {label} ({code}): {text}", retryable=False, kind=kind) from None
        except smtplib.SMTPServerDisconnected as exc:
            raise ChannelError(f"{what}: server disconnected: {exc}", retryable=True) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise ChannelError(
                f"{what}: {exc} (check starttls/ssl/username settings)", retryable=False, kind="ChannelMisconfigured"
            ) from None
        except smtplib.SMTPException as exc:
            raise ChannelError(f"{what}: {exc}", retryable=False, kind="SmtpRejected") from None
        except ssl.SSLCertVerificationError as exc:
            raise ChannelError(
                f"{what}: TLS certificate not trusted: {exc.verify_message or exc}",
                retryable=False,
                kind="ChannelMisconfigured",
            ) from None
        except (TimeoutError, OSError) as exc:  # socket.timeout, refused, reset, DNS, other TLS errors
            raise ChannelError(f"{what}: {type(exc).__name__}: {exc}", retryable=True) from None
        if refused:
            log.warning(
                "email channel %s: delivered, but the relay refused %s",
                self.name,
                ", ".join(f"{addr} ({code})" for addr, (code, _msg) in refused.items()),
            )
        return Sent(message_id=str(mail["Message-ID"]))
