"""Process settings from the environment (see CONTRACT.md, "Environment")."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from temporalio.envconfig import ClientConfigProfile

__all__ = ["Settings", "DEFAULT_GATEWAY_MAX_BODY", "parse_size", "temporal_default"]

DEFAULT_GATEWAY_MAX_BODY = "10MiB"
"""The gateway's default request body limit (``TOCSIN_GATEWAY_MAX_BODY``)."""

_SIZE = re.compile(r"^\s*(\d+)\s*(?:([KMG])(i?B)?|B)?\s*$", re.IGNORECASE)
_UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def parse_size(text: str) -> int:
    """A size in bytes from ``1048576``, ``512KiB``, ``10MiB``, ``1G`` (K, M, G are powers of 1024).

    Raises:
        ValueError: not a size, or zero.
    """
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"not a size in bytes: {text!r} (e.g. 1048576, 512KiB, 10MiB)")
    size = int(match.group(1)) * _UNITS.get((match.group(2) or "").upper(), 1)
    if size <= 0:
        raise ValueError(f"must be above zero: {text!r}")
    return size


def temporal_default(name: str, variable: str, fallback: str) -> str:
    """``address`` or ``namespace`` as the Temporal CLI resolves it, else Tocsin's default.

    The environment variable wins, then the TOML profile (``TEMPORAL_CONFIG_FILE``,
    ``TEMPORAL_PROFILE``, default ``~/.config/temporalio/temporal.toml``), then ``fallback``. A
    profile that cannot be loaded counts as absent here; :func:`workers.temporal.connect` reports it.
    """
    value = os.environ.get(variable)
    if not value:
        try:
            value = getattr(ClientConfigProfile.load(), name)
        except RuntimeError:  # temporalio's ConfigError: a malformed file or an unknown profile
            value = None
    return value or fallback


@dataclass(frozen=True)
class Settings:
    """Where Temporal is, where Tocsin keeps local state, and how the gateway guards its door.

    Attributes:
        address: the Temporal frontend (``TEMPORAL_ADDRESS``, else the Temporal CLI's TOML profile,
            else ``localhost:7233``).
        namespace: the Temporal namespace (``TEMPORAL_NAMESPACE``, else the profile's, else ``default``).
        temporal_env_config: connect with the credentials the Temporal CLI would use in this
            environment (``TEMPORAL_API_KEY``, ``TEMPORAL_TLS*``, ``TEMPORAL_GRPC_META_*``, the profile
            named by ``TEMPORAL_PROFILE``). ``tocsin dev`` turns it off: its embedded server is plaintext.
        task_queue: Tocsin's task queue (``TOCSIN_TASK_QUEUE``).
        home: the local state folder (``TOCSIN_HOME``).
        gateway_token: the bearer/basic token the gateway requires on ``/webhooks/alertmanager``
            (``TOCSIN_GATEWAY_TOKEN``; empty means unset).
        gateway_insecure_no_auth: accept unauthenticated webhooks when no token is set (only from
            ``tocsin gateway --insecure-no-auth``, never from the environment). Without it and without
            a token the gateway refuses to start and its app refuses every webhook.
        gateway_max_body: the largest request body the gateway reads (``TOCSIN_GATEWAY_MAX_BODY``,
            default ``10MiB``; a number of bytes, or with a ``KiB``/``MiB``/``GiB`` suffix). Larger
            bodies get 413. Kept as written; :meth:`gateway_max_body_bytes` parses it, so a bad value
            stops the gateway and ``tocsin dev`` (exit 2) without breaking any other command.
    """

    address: str = field(default_factory=lambda: temporal_default("address", "TEMPORAL_ADDRESS", "localhost:7233"))
    namespace: str = field(default_factory=lambda: temporal_default("namespace", "TEMPORAL_NAMESPACE", "default"))
    temporal_env_config: bool = True
    task_queue: str = field(default_factory=lambda: os.environ.get("TOCSIN_TASK_QUEUE", "tocsin"))
    home: Path = field(default_factory=lambda: Path(os.environ.get("TOCSIN_HOME", ".tocsin")))
    gateway_token: str | None = field(default_factory=lambda: os.environ.get("TOCSIN_GATEWAY_TOKEN") or None)
    gateway_insecure_no_auth: bool = False
    gateway_max_body: str = field(
        default_factory=lambda: os.environ.get("TOCSIN_GATEWAY_MAX_BODY") or DEFAULT_GATEWAY_MAX_BODY
    )

    def gateway_max_body_bytes(self) -> int:
        """The gateway's body limit in bytes.

        Raises:
            ValueError: ``TOCSIN_GATEWAY_MAX_BODY`` is not a size; the message names it.
        """
        try:
            return parse_size(self.gateway_max_body)
        except ValueError as exc:
            raise ValueError(f"TOCSIN_GATEWAY_MAX_BODY: {exc}") from None
