"""Tocsin's own credentials to Temporal: mTLS through a TLS-terminating proxy in front of a real dev server.

The proxy (loopback, client certificates required, ALPN ``h2``) forwards bytes to the dev server's
plaintext gRPC port, so what is tested is what a cluster secured with mTLS would do: the right
certificates connect, no client certificate or the wrong CA is refused with one line, exit 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from temporalio.testing import WorkflowEnvironment

from tests.helpers import address_of, cli
from workers.settings import Settings
from workers.temporal import TemporalUnavailable, connect

TEMPORAL_VARS = (
    "TEMPORAL_ADDRESS",
    "TEMPORAL_NAMESPACE",
    "TEMPORAL_API_KEY",
    "TEMPORAL_TLS",
    "TEMPORAL_TLS_CLIENT_CERT_PATH",
    "TEMPORAL_TLS_CLIENT_KEY_PATH",
    "TEMPORAL_TLS_SERVER_CA_CERT_PATH",
    "TEMPORAL_TLS_SERVER_NAME",
    "TEMPORAL_PROFILE",
)


# ---------------------------------------------------------------- certificates


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write(path: Path, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
    path.with_suffix(".pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    path.with_suffix(".key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


def _ca(folder: Path, name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(_name(name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )  # digital_signature, key_cert_sign, crl_sign
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write(folder / name, key, cert)
    return key, cert


def _leaf(folder: Path, name: str, ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate], *, server: bool) -> None:
    ca_key, ca_cert = ca
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
        )  # digital_signature
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    _write(folder / name, key, builder.sign(ca_key, hashes.SHA256()))


@dataclass(frozen=True)
class Pki:
    """``ca.pem``, ``server.pem``/``.key``, ``client.pem``/``.key`` and an unrelated ``other-ca.pem``."""

    folder: Path

    def path(self, name: str) -> str:
        return str(self.folder / name)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca = _ca(folder, "ca")
    _leaf(folder, "server", ca, server=True)
    _leaf(folder, "client", ca, server=False)
    _ca(folder, "other-ca")
    return Pki(folder)


# ---------------------------------------------------------------- the proxy


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


@contextlib.contextmanager
def tls_proxy(pki: Pki, upstream: str) -> Iterator[str]:
    """A loopback TLS terminator requiring a client certificate from ``ca``; yields ``127.0.0.1:port``.

    It runs on a loop of its own in a thread, so blocking subprocess calls in the test do not stall it.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.path("server.pem"), pki.path("server.key"))
    context.load_verify_locations(pki.path("ca.pem"))
    context.verify_mode = ssl.CERT_REQUIRED
    context.set_alpn_protocols(["h2"])
    host, port = upstream.rsplit(":", 1)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))

    loop = asyncio.new_event_loop()
    loop.set_exception_handler(lambda _loop, _context: None)  # refused handshakes are the point
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = asyncio.run_coroutine_threadsafe(asyncio.start_server(handle, "127.0.0.1", 0, ssl=context), loop).result(
        10
    )
    try:
        yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.fixture(scope="module")
def proxy(pki: Pki, dev_env: WorkflowEnvironment) -> Iterator[str]:
    with tls_proxy(pki, address_of(dev_env.client)) as address:
        yield address


@pytest.fixture(autouse=True)
def _no_ambient_temporal(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Only the variables a test sets: no developer profile, key or certificate."""
    for name in TEMPORAL_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(tmp_path / "no-temporal.toml"))


def _mtls_env(pki: Pki, proxy: str, *, cert: bool = True, ca: str = "ca.pem") -> dict[str, str]:
    env = {
        "TEMPORAL_ADDRESS": proxy,
        "TEMPORAL_TLS_SERVER_CA_CERT_PATH": pki.path(ca),
        "TEMPORAL_TLS_SERVER_NAME": "localhost",
    }
    if cert:
        env |= {
            "TEMPORAL_TLS_CLIENT_CERT_PATH": pki.path("client.pem"),
            "TEMPORAL_TLS_CLIENT_KEY_PATH": pki.path("client.key"),
        }
    return env


def _setenv(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)


# ---------------------------------------------------------------- tests


async def test_mtls_connects_and_lists_workflows(pki: Pki, proxy: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _setenv(monkeypatch, _mtls_env(pki, proxy))
    client = await connect(Settings())
    assert await client.service_client.check_health()
    async for _ in client.list_workflows(limit=1):
        break


def test_cli_status_over_mtls(pki: Pki, proxy: str, tmp_path: Path) -> None:
    done = cli("status", "--json", env=_mtls_env(pki, proxy) | {"TEMPORAL_CONFIG_FILE": str(tmp_path / "none.toml")})
    assert done.returncode == 0, done.stderr
    assert done.stdout.lstrip().startswith("{")


async def test_no_client_certificate_is_refused(pki: Pki, proxy: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _setenv(monkeypatch, _mtls_env(pki, proxy, cert=False))
    with pytest.raises(TemporalUnavailable) as caught:
        await connect(Settings())
    message = str(caught.value)
    assert message.startswith(f"cannot reach Temporal at {proxy}: TLS handshake failed") and "\n" not in message
    assert "client certificate" in message


def test_cli_without_client_certificate_exits_1(pki: Pki, proxy: str, tmp_path: Path) -> None:
    env = _mtls_env(pki, proxy, cert=False) | {"TEMPORAL_CONFIG_FILE": str(tmp_path / "none.toml")}
    done = cli("status", env=env)
    assert done.returncode == 1, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert f"cannot reach Temporal at {proxy}" in done.stderr


async def test_wrong_ca_is_refused(pki: Pki, proxy: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _setenv(monkeypatch, _mtls_env(pki, proxy, ca="other-ca.pem"))
    with pytest.raises(TemporalUnavailable) as caught:
        await connect(Settings())
    message = str(caught.value)
    assert message.startswith(f"cannot reach Temporal at {proxy}: TLS handshake failed") and "\n" not in message
    assert "not signed by a trusted CA (TEMPORAL_TLS_SERVER_CA_CERT_PATH)" in message


def test_cli_with_missing_certificate_file_exits_1(pki: Pki, proxy: str, tmp_path: Path) -> None:
    env = _mtls_env(pki, proxy) | {
        "TEMPORAL_TLS_CLIENT_CERT_PATH": str(tmp_path / "gone.pem"),
        "TEMPORAL_CONFIG_FILE": str(tmp_path / "none.toml"),
    }
    done = cli("status", env=env)
    assert done.returncode == 1, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "gone.pem" in done.stderr
