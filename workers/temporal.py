"""Connecting to Temporal the one way every Tocsin process does."""

from __future__ import annotations

import logging
from typing import Any

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError

from workers.settings import Settings
from workflows.search import ALL_KEYS

__all__ = ["connect", "ensure_search_attributes", "TemporalUnavailable"]

log = logging.getLogger("tocsin")


class TemporalUnavailable(Exception):
    """Temporal did not answer at the configured address."""


async def connect(settings: Settings, *, identity: str | None = None, lazy: bool = False) -> Client:
    """A client with the pydantic data converter.

    Raises:
        TemporalUnavailable: the frontend cannot be reached (not raised when ``lazy``).
    """
    kwargs: dict[str, Any] = {"identity": identity} if identity else {}
    try:
        return await Client.connect(
            settings.address, namespace=settings.namespace, data_converter=pydantic_data_converter, lazy=lazy, **kwargs
        )
    except RuntimeError as exc:
        text = str(exc)
        reason = (
            "connection refused"
            if "ConnectionRefused" in text or "Connection refused" in text
            else (text.splitlines()[0][:160] if text else type(exc).__name__)
        )
        raise TemporalUnavailable(f"cannot reach Temporal at {settings.address}: {reason}") from None


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
