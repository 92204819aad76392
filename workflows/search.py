"""Search attributes that make the Temporal UI Tocsin's audit browser."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

__all__ = ["KIND", "SERVICE", "ENVIRONMENT", "SEVERITY", "STATUS", "ALL_KEYS"]

KIND = SearchAttributeKey.for_keyword("TocsinKind")
SERVICE = SearchAttributeKey.for_keyword("TocsinService")
ENVIRONMENT = SearchAttributeKey.for_keyword("TocsinEnvironment")
SEVERITY = SearchAttributeKey.for_keyword("TocsinSeverity")
STATUS = SearchAttributeKey.for_keyword("TocsinStatus")

ALL_KEYS = (KIND, SERVICE, ENVIRONMENT, SEVERITY, STATUS)
