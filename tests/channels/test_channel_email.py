"""The ``email`` channel: SendGrid against a local fake, SMTP against a real local aiosmtpd server."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import ipaddress
import socket
import ssl
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from activities.channels.base import ChannelDeps, ChannelError, SendContext
from activities.channels.email import EmailChannel, message_id_for, render_html, render_text
from tests.fakes.sendgrid import FakeSendGrid
from workflows.models import Link, Message, MessageField


def build_message(**overrides: Any) -> Message:
    data: dict[str, Any] = dict(
        title="Build failed: acme/api@main (ci)",
        text="Failing for 2 builds in a row.\n✗ tests.test_api.test_login: assert 401 == 200",
        severity="error",
        fields=[MessageField(title="Branch", value="main"), MessageField(title="Commit", value="abc1234")],
        links=[Link(text="View run", url="https://ci.example.com/runs/42")],
        labels={"alertname": "BuildFailed", "kind": "build", "repo": "acme/api"},
        source="pipeline/acme/api/main",
    )
    data.update(overrides)
    return Message(**data)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
async def deps(tmp_path: Path):
    seen: list[httpx.Request] = []

    async def hook(request: httpx.Request) -> None:
        seen.append(request)

    client = httpx.AsyncClient(event_hooks={"request": [hook]})
    d = ChannelDeps(http=client, home=tmp_path)
    d.extra["seen"] = seen
    yield d
    await client.aclose()


# =========================================================================== rendering


def test_html_escapes_everything_and_shows_severity_colour():
    message = build_message(
        title="<script>alert(1)</script> & co",
        text="<img src=x onerror=alert(1)>",
        fields=[MessageField(title="<b>", value="a < b & c")],
        links=[
            Link(text="<i>run</i>", url="https://ci.example.com/runs/42?a=1&b=2"),
            Link(text="evil", url="javascript:alert(1)"),
        ],
    )
    page = render_html(message)
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in page
    assert "<img" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "&lt;b&gt;" in page and "a &lt; b &amp; c" in page
    assert 'href="https://ci.example.com/runs/42?a=1&amp;b=2"' in page and "&lt;i&gt;run&lt;/i&gt;" in page
    assert "javascript:" not in page.split("evil")[0][-40:] and 'href="javascript' not in page
    assert "border-left:6px solid #FF0000" in page  # error → red bar
    assert "border-left:6px solid #00FF00" in render_html(build_message(severity="success"))


def test_plain_text_has_title_text_fields_and_links():
    text = render_text(build_message())
    lines = text.splitlines()
    assert lines[0] == "[ERROR] Build failed: acme/api@main (ci)"
    assert "Failing for 2 builds in a row." in lines
    assert any(line.startswith("Branch:") and line.endswith("main") for line in lines)
    assert "View run: https://ci.example.com/runs/42" in lines
    assert "pipeline/acme/api/main" in text


def test_message_id_is_stable_per_key_and_well_formed():
    a, b = message_id_for("wf/step-1/mail"), message_id_for("wf/step-2/mail")
    assert a == message_id_for("wf/step-1/mail") and a != b
    assert a.startswith("<") and a.endswith("@tocsin>") and len(a) == len("<@tocsin>") + 32


def test_misconfiguration_is_rejected_up_front(deps: ChannelDeps):
    with pytest.raises(ChannelError) as err:
        EmailChannel("mail", {"provider": "sendgrid", "from": "ci@example.com", "to": "a@example.com"}, deps)
    assert not err.value.retryable and "api_key" in str(err.value)
    with pytest.raises(ChannelError) as err:
        EmailChannel("mail", {"provider": "smtp", "host": "h", "from": "ci@example.com", "to": "nobody"}, deps)
    assert not err.value.retryable and "'to'" in str(err.value)
    with pytest.raises(ChannelError) as err:
        EmailChannel("mail", {"provider": "carrier-pigeon", "from": "ci@example.com", "to": "a@example.com"}, deps)
    assert "provider" in str(err.value)


# =========================================================================== SendGrid


@pytest.fixture(scope="module")
def sendgrid_server():
    with FakeSendGrid(verified_senders=["ci@example.com"]) as fake:
        yield fake


@pytest.fixture
def sg(sendgrid_server: FakeSendGrid):
    sendgrid_server.reset()
    yield sendgrid_server
    sendgrid_server.reset()


@pytest.fixture
def make_sendgrid(sg: FakeSendGrid, deps: ChannelDeps):
    def make(**overrides: Any) -> EmailChannel:
        settings = {
            "provider": "sendgrid",
            "api_key": sg.api_key,
            "api_url": sg.url,
            "from": "Tocsin CI <ci@example.com>",
            "to": ["oncall@example.com", "lead@example.com"],
            **overrides,
        }
        return EmailChannel("team-mail", settings, deps)

    return make


async def test_sendgrid_mail_is_accepted_with_idempotency_headers(sg: FakeSendGrid, make_sendgrid, deps):
    sent = await make_sendgrid().send(build_message(), "pipeline/acme/api/main/event-1/mail", 1)

    [mail] = sg.mails
    assert sent.message_id == mail["message_id"] and not sent.duplicate
    assert mail["from"] == {"email": "ci@example.com", "name": "Tocsin CI"}
    assert mail["to"] == ["oncall@example.com", "lead@example.com"]
    assert mail["subject"] == "Build failed: acme/api@main (ci)"
    assert [c["type"] for c in mail["body"]["content"]] == ["text/plain", "text/html"]
    assert mail["text"].startswith("[ERROR] Build failed") and "<table" in mail["html"]
    assert mail["headers"] == {
        "Message-ID": message_id_for("pipeline/acme/api/main/event-1/mail"),
        "X-Tocsin-Idempotency-Key": "pipeline/acme/api/main/event-1/mail",
    }
    assert mail["custom_args"] == {
        "tocsin_idempotency_key": "pipeline/acme/api/main/event-1/mail",
        "tocsin_source": "pipeline/acme/api/main",
    }
    [call] = sg.calls("mail.send")
    assert call.headers["authorization"] == f"Bearer {sg.api_key}"
    assert call.headers["content-type"].startswith("application/json") and call.status == 202
    assert len(deps.extra["seen"]) == 1  # went through the shared client


async def test_sendgrid_to_as_comma_separated_string_is_deduplicated(sg: FakeSendGrid, make_sendgrid):
    await make_sendgrid(to="a@example.com, B@example.com,a@example.com").send(build_message(), "k", 1)
    [mail] = sg.mails
    assert mail["to"] == ["a@example.com", "B@example.com"]


async def test_sendgrid_subject_never_carries_a_line_break(sg: FakeSendGrid, make_sendgrid):
    await make_sendgrid(subject_prefix="[tocsin] ").send(build_message(title="two\r\nlines"), "k", 1)
    assert sg.mails[0]["subject"] == "[tocsin] two lines"


async def test_sendgrid_bad_key_is_permanent(sg: FakeSendGrid, make_sendgrid):
    with pytest.raises(ChannelError) as err:
        await make_sendgrid(api_key="SG.wrong").send(build_message(), "k", 1)
    assert not err.value.retryable and err.value.kind == "BadCredentials"
    assert "401" in str(err.value) and "authorization grant is invalid" in str(err.value)
    assert sg.mails == []


async def test_sendgrid_unverified_sender_is_permanent_with_reason(sg: FakeSendGrid, make_sendgrid):
    with pytest.raises(ChannelError) as err:
        await make_sendgrid(**{"from": "other@example.com"}).send(build_message(), "k", 1)
    assert not err.value.retryable and "verified Sender Identity" in str(err.value)


async def test_sendgrid_400_is_permanent_with_sendgrid_message(sg: FakeSendGrid, make_sendgrid):
    with pytest.raises(ChannelError) as err:
        await make_sendgrid(to="bob@nowhere").send(build_message(), "k", 1)  # no dot: SendGrid refuses it
    assert not err.value.retryable and err.value.kind == "SendGridRejected"
    assert "(400)" in str(err.value)
    assert "personalizations.0.to.0.email: Does not contain a valid address." in str(err.value)


async def test_sendgrid_429_retries_after_the_rate_limit_reset(sg: FakeSendGrid, make_sendgrid):
    sg.rate_limit_next(retry_after=30)
    with pytest.raises(ChannelError) as err:
        await make_sendgrid().send(build_message(), "k", 1)
    assert err.value.retryable and err.value.kind == "RateLimited"
    assert err.value.retry_after is not None and 28 <= err.value.retry_after <= 32


async def test_sendgrid_lost_answer_retry_keeps_the_same_message_id_header(sg: FakeSendGrid, make_sendgrid):
    """The documented at-least-once corner: the mail goes twice, but as the same Message-ID."""
    sg.fail_after_accept()
    with pytest.raises(ChannelError) as err:
        await make_sendgrid().send(build_message(), "wf/step/mail", 1)
    assert err.value.retryable
    await make_sendgrid().send(build_message(), "wf/step/mail", 2)
    first, second = sg.mails
    assert first["headers"]["Message-ID"] == second["headers"]["Message-ID"] == message_id_for("wf/step/mail")


async def test_sendgrid_ignores_lifecycle_context(sg: FakeSendGrid, make_sendgrid):
    await make_sendgrid().send(build_message(), "k", 1, SendContext(action="resolve", dedup_key="x"))
    assert len(sg.mails) == 1


# =========================================================================== SMTP (real local server)


class Recorder:
    """An aiosmtpd handler that records envelopes and can answer with an injected reply."""

    def __init__(self) -> None:
        self.envelopes: list[Any] = []
        self.sessions: list[Any] = []
        self.rcpt_reply: str | None = None
        self.data_reply: str | None = None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.data_reply:
            return self.data_reply
        self.envelopes.append(envelope)
        self.sessions.append(session)
        return "250 Message accepted for delivery"

    def parsed(self, i: int = -1) -> email.message.EmailMessage:
        return email.message_from_bytes(self.envelopes[i].content, policy=email.policy.default)  # type: ignore


def _authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == b"ci" and auth_data.password == b"s3cret"
    return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself


@pytest.fixture
def smtp_server():
    handler = Recorder()
    controller = Controller(
        handler, hostname="127.0.0.1", port=free_port(), authenticator=_authenticator, auth_require_tls=False
    )
    controller.start()
    yield handler, controller.port
    controller.stop()


@pytest.fixture
def make_smtp(deps: ChannelDeps):
    def make(port: int, **overrides: Any) -> EmailChannel:
        settings = {
            "provider": "smtp",
            "host": "127.0.0.1",
            "port": port,
            "from": "Tocsin <ci@example.com>",
            "to": ["oncall@example.com", "lead@example.com"],
            "timeout": 5,
            **overrides,
        }
        return EmailChannel("smtp-mail", settings, deps)

    return make


async def test_smtp_delivers_multipart_alternative_with_message_id(smtp_server, make_smtp):
    handler, port = smtp_server
    message = build_message(title="Build <failed> & more")
    sent = await make_smtp(port).send(message, "pipeline/acme/api/main/event-1/mail", 1)

    [envelope] = handler.envelopes
    assert envelope.mail_from == "ci@example.com"
    assert envelope.rcpt_tos == ["oncall@example.com", "lead@example.com"]
    mail = handler.parsed()
    assert mail["From"] == "Tocsin <ci@example.com>"
    assert mail["To"] == "oncall@example.com, lead@example.com"
    assert mail["Subject"] == "Build <failed> & more"
    assert mail["Message-ID"] == message_id_for("pipeline/acme/api/main/event-1/mail") == sent.message_id
    assert mail["X-Tocsin-Idempotency-Key"] == "pipeline/acme/api/main/event-1/mail"
    assert mail["Date"]
    assert mail.get_content_type() == "multipart/alternative"
    parts = list(mail.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert parts[0].get_content().startswith("[ERROR] Build <failed> & more")
    html_part = parts[1].get_content()
    assert "Build &lt;failed&gt; &amp; more" in html_part and "<failed>" not in html_part


async def test_smtp_retry_reuses_the_message_id(smtp_server, make_smtp):
    handler, port = smtp_server
    channel = make_smtp(port)
    await channel.send(build_message(), "wf/step/mail", 1)
    await channel.send(build_message(), "wf/step/mail", 2)
    await channel.send(build_message(), "wf/other/mail", 1)
    ids = [handler.parsed(i)["Message-ID"] for i in range(3)]
    assert ids[0] == ids[1] != ids[2]


async def test_smtp_4xx_is_retryable(smtp_server, make_smtp):
    handler, port = smtp_server
    handler.data_reply = "451 4.3.0 Mail server temporarily rejected message"
    with pytest.raises(ChannelError) as err:
        await make_smtp(port).send(build_message(), "k", 1)
    assert err.value.retryable and "451" in str(err.value)


async def test_smtp_5xx_is_permanent(smtp_server, make_smtp):
    handler, port = smtp_server
    handler.data_reply = "554 5.7.1 Message rejected as spam"
    with pytest.raises(ChannelError) as err:
        await make_smtp(port).send(build_message(), "k", 1)
    assert not err.value.retryable and "554" in str(err.value) and "spam" in str(err.value)


async def test_smtp_550_recipients_refused_is_permanent_and_names_them(smtp_server, make_smtp):
    handler, port = smtp_server
    handler.rcpt_reply = "550 5.1.1 No such user"
    with pytest.raises(ChannelError) as err:
        await make_smtp(port).send(build_message(), "k", 1)
    assert not err.value.retryable
    assert "oncall@example.com (550" in str(err.value) and "No such user" in str(err.value)


async def test_smtp_450_recipients_refused_is_retryable(smtp_server, make_smtp):
    handler, port = smtp_server
    handler.rcpt_reply = "450 4.2.1 Mailbox busy"
    with pytest.raises(ChannelError) as err:
        await make_smtp(port).send(build_message(), "k", 1)
    assert err.value.retryable


async def test_smtp_auth_succeeds_with_the_right_password(smtp_server, make_smtp):
    handler, port = smtp_server
    await make_smtp(port, username="ci", password="s3cret").send(build_message(), "k", 1)
    assert len(handler.envelopes) == 1
    assert handler.sessions[0].authenticated is True


async def test_smtp_auth_failure_is_permanent(smtp_server, make_smtp):
    handler, port = smtp_server
    with pytest.raises(ChannelError) as err:
        await make_smtp(port, username="ci", password="wrong").send(build_message(), "k", 1)
    assert not err.value.retryable and err.value.kind == "BadCredentials" and "535" in str(err.value)
    assert handler.envelopes == []


async def test_smtp_starttls_requested_but_not_offered_is_permanent(smtp_server, make_smtp):
    _handler, port = smtp_server
    with pytest.raises(ChannelError) as err:
        await make_smtp(port, starttls=True).send(build_message(), "k", 1)
    assert not err.value.retryable and "STARTTLS" in str(err.value)


async def test_smtp_connection_refused_is_retryable(make_smtp):
    with pytest.raises(ChannelError) as err:
        await make_smtp(free_port()).send(build_message(), "k", 1)
    assert err.value.retryable and "ConnectionRefused" in str(err.value)


async def test_smtp_silent_server_times_out_retryably(make_smtp):
    with socket.socket() as listener:  # accepts connections (backlog) but never greets
        listener.bind(("127.0.0.1", 0))
        listener.listen(5)
        port = listener.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(ChannelError) as err:
            await make_smtp(port, timeout=0.3).send(build_message(), "k", 1)
    assert err.value.retryable and time.monotonic() - started < 5


# --------------------------------------------------------------------------- STARTTLS with a real certificate


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    crypto = pytest.importorskip("cryptography")
    del crypto
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@pytest.fixture
def tls_server(tmp_path: Path):
    cert, key = _self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    handler = Recorder()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=free_port(),
        tls_context=context,
        require_starttls=True,
        authenticator=_authenticator,
    )
    controller.start()
    yield handler, controller.port, cert
    controller.stop()


async def test_smtp_starttls_then_auth(tls_server, make_smtp):
    handler, port, cert = tls_server
    await make_smtp(port, starttls=True, ca_file=str(cert), username="ci", password="s3cret").send(
        build_message(), "k", 1
    )
    [session] = handler.sessions
    assert session.ssl is not None and session.authenticated  # the mail went over TLS, after AUTH


async def test_smtp_without_starttls_is_refused_permanently(tls_server, make_smtp):
    handler, port, _cert = tls_server
    with pytest.raises(ChannelError) as err:
        await make_smtp(port).send(build_message(), "k", 1)
    assert not err.value.retryable and "530" in str(err.value)
    assert handler.envelopes == []


async def test_smtp_untrusted_certificate_is_permanent(tls_server, make_smtp):
    _handler, port, _cert = tls_server
    with pytest.raises(ChannelError) as err:
        await make_smtp(port, starttls=True).send(build_message(), "k", 1)
    assert not err.value.retryable and "certificate" in str(err.value).lower()
