"""Connecting to Temporal the one way every Tocsin process does."""

from __future__ import annotations

import logging
import os
import re
from typing import Any

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.envconfig import ClientConfigProfile
from temporalio.service import RPCError, TLSConfig

from workers.settings import Settings
from workflows.search import ALL_KEYS

__all__ = ["connect", "connect_options", "describe", "ensure_search_attributes", "TemporalUnavailable"]

log = logging.getLogger("tocsin")


class TemporalUnavailable(Exception):
    """Temporal did not answer at the configured address, or Tocsin's credentials to it are unusable."""


_PROFILE_VARS = "TEMPORAL_CONFIG_FILE / TEMPORAL_PROFILE"
_NO_HOST_VERIFICATION = "TEMPORAL_TLS_DISABLE_HOST_VERIFICATION"


def connect_options(settings: Settings) -> dict[str, Any]:
    """The ``Client.connect`` keyword arguments that say where Temporal is and how to prove who Tocsin is.

    ``target_host`` and ``namespace`` come from ``settings``. With ``settings.temporal_env_config``,
    ``api_key``, ``tls`` and ``rpc_metadata`` come from the Temporal CLI's environment configuration
    (``temporalio.envconfig``): ``TEMPORAL_API_KEY``, ``TEMPORAL_TLS``, ``TEMPORAL_TLS_CLIENT_CERT_PATH``
    / ``_DATA``, ``TEMPORAL_TLS_CLIENT_KEY_PATH`` / ``_DATA``, ``TEMPORAL_TLS_SERVER_CA_CERT_PATH`` /
    ``_DATA``, ``TEMPORAL_TLS_SERVER_NAME``, ``TEMPORAL_GRPC_META_*`` over the TOML profile
    (``TEMPORAL_CONFIG_FILE``, ``TEMPORAL_PROFILE``). An API key turns TLS on unless ``TEMPORAL_TLS``
    says otherwise, as in the CLI. Certificate files are read here.

    Raises:
        TemporalUnavailable: the profile cannot be loaded, or a TLS file cannot be read; the message
            names the setting and never carries the API key.
    """
    options: dict[str, Any] = {"target_host": settings.address, "namespace": settings.namespace}
    if not settings.temporal_env_config:
        return options
    try:
        profile = ClientConfigProfile.load()
    except RuntimeError as exc:  # temporalio's ConfigError: malformed TOML, unknown profile
        why = _first_line(exc).removeprefix("Configuration loading error: ")
        raise TemporalUnavailable(f"Temporal client configuration ({_PROFILE_VARS}): {why}") from None
    try:
        loaded = profile.to_client_connect_config()
    except OSError as exc:
        raise TemporalUnavailable(
            f"Temporal TLS settings (TEMPORAL_TLS_*): cannot read {exc.filename}: {exc.strerror}"
        ) from None
    for key in ("api_key", "tls", "rpc_metadata"):
        if key in loaded:
            options[key] = loaded[key]
    tls = options.get("tls")
    if isinstance(tls, TLSConfig) and bool(tls.client_cert) != bool(tls.client_private_key):
        given, missing = (
            ("certificate", "TEMPORAL_TLS_CLIENT_KEY_PATH")
            if tls.client_cert
            else ("key", "TEMPORAL_TLS_CLIENT_CERT_PATH")
        )
        raise TemporalUnavailable(f"Temporal TLS settings: a client {given} without {missing}; mTLS needs both")
    if os.environ.get(_NO_HOST_VERIFICATION, "").strip().lower() in ("1", "true", "yes"):
        log.warning(
            "%s is not supported by the Temporal Python SDK: the server certificate is still verified "
            "(set TEMPORAL_TLS_SERVER_NAME to the name it carries)",
            _NO_HOST_VERIFICATION,
        )
    return options


def describe(options: dict[str, Any]) -> str:
    """How a connection authenticates, for logs: ``plaintext``, ``TLS``, ``mTLS``, plus ``API key`` (never the key)."""
    tls = options.get("tls")
    parts = ["plaintext" if not tls else "mTLS" if isinstance(tls, TLSConfig) and tls.client_cert else "TLS"]
    if options.get("api_key"):
        parts.append("API key")
    return ", ".join(parts)


async def connect(settings: Settings, *, identity: str | None = None, lazy: bool = False) -> Client:
    """A client with the pydantic data converter, connected as :func:`connect_options` says.

    Raises:
        TemporalUnavailable: the credentials are unusable, or the frontend cannot be reached or
            refuses the TLS handshake (the last two not raised when ``lazy``). One line, no API key.
    """
    options = connect_options(settings)
    if identity:
        options["identity"] = identity
    log.debug(
        "connecting to Temporal at %s (namespace %s, %s)", settings.address, settings.namespace, describe(options)
    )
    try:
        return await Client.connect(**options, data_converter=pydantic_data_converter, lazy=lazy)
    except RuntimeError as exc:
        reason = _reason(str(exc), options)
        raise TemporalUnavailable(f"cannot reach Temporal at {settings.address}: {reason}") from None


_CLIENT_CERT_HINT = (
    "a client certificate it trusts may be required: TEMPORAL_TLS_CLIENT_CERT_PATH, TEMPORAL_TLS_CLIENT_KEY_PATH"
)
_TLS_REASONS = (
    ("UnknownIssuer", "the server's certificate is not signed by a trusted CA (TEMPORAL_TLS_SERVER_CA_CERT_PATH)"),
    ("NotValidForName", "the server's certificate does not carry that name (TEMPORAL_TLS_SERVER_NAME)"),
    ("InvalidContentType", "the server does not speak TLS (TEMPORAL_TLS=false for a plaintext server)"),
    ("close_notify", f"the server closed the connection ({_CLIENT_CERT_HINT})"),
    # TLS 1.3: a server refusing the client's certificate closes the connection after the client
    # thinks the handshake is done, so the first call is cancelled instead.
    ("operation was canceled", f"the server closed the connection ({_CLIENT_CERT_HINT})"),
    ("connection closed before message completed", f"the server closed the connection ({_CLIENT_CERT_HINT})"),
    ("ConnectionReset", f"the server reset the connection ({_CLIENT_CERT_HINT})"),
    ("BrokenPipe", f"the server closed the connection ({_CLIENT_CERT_HINT})"),
    ("CertificateRequired", f"the server wants a client certificate ({_CLIENT_CERT_HINT})"),
    ("BadCertificate", f"the server refused the client certificate ({_CLIENT_CERT_HINT})"),
    ("UnknownCA", f"the server does not trust the client certificate's CA ({_CLIENT_CERT_HINT})"),
)
_TLS_ERROR = re.compile(r"(InvalidCertificate\(\w+|AlertReceived\(\w+|InvalidMessage\(\w+)")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _reason(text: str, options: dict[str, Any]) -> str:
    """One line on why ``Client.connect`` failed, with the API key (if any) blanked out."""
    key = options.get("api_key")
    if key:
        text = text.replace(key, "***")
    if "ConnectionRefused" in text or "Connection refused" in text:
        return "connection refused"
    if options.get("tls"):
        for marker, why in _TLS_REASONS:
            if marker in text:
                return f"TLS handshake failed ({describe(options)}): {why}"
        found = _TLS_ERROR.search(text)
        if found:
            return f"TLS handshake failed ({describe(options)}): {found.group(1)})"
    return text.strip().splitlines()[0][:200] if text.strip() else "unknown error"


async def ensure_search_attributes(client: Client, namespace: str) -> list[str]:
    """Register the ``Tocsin*`` search attributes that the namespace lacks.

    Returns:
        The names added (empty when all were present, or when the server does
        not allow it, e.g. Temporal Cloud, where they are added in the console).
    """
    have: set[str] = set()
    try:
        existing = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
        have = set(existing.custom_attributes) | set(existing.system_attributes)
    except RPCError as exc:
        # Some servers (the time-skipping test server) can add but not list.
        log.debug("cannot list search attributes (%s); adding all", exc.message)
    missing = {k.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for k in ALL_KEYS if k.name not in have}
    if not missing:
        return []
    try:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )
    except RPCError as exc:
        if "already" not in exc.message.lower():
            log.warning("cannot add search attributes (%s); add %s by hand", exc.message, ", ".join(missing))
            return []
    return sorted(missing)
