"""The namespace's workflow execution retention, raised to ``audit.history_retention`` when it is shorter.

Temporal deletes a closed workflow, and its history, once the namespace retention has passed
(24 h by default on ``temporal server start-dev`` and on the auto-setup image). ``tocsin worker``
and ``tocsin dev`` call :func:`ensure_retention` at start: a shorter retention is raised with
``UpdateNamespace`` and said once in the log ("namespace default retention raised from 24h to
90d"); a longer one is left alone. Where the server does not let Tocsin change it (Temporal
Cloud, where retention is set in the console or with ``tcld``, or a role without the
permission) a warning says so and the worker goes on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from google.protobuf.duration_pb2 import Duration
from temporalio.api.namespace.v1 import NamespaceConfig
from temporalio.api.workflowservice.v1 import UpdateNamespaceRequest
from temporalio.client import Client
from temporalio.service import RPCError

from operations.status import namespace_retention, retention_text
from workflows.policy.durations import parse_duration

__all__ = ["RetentionOutcome", "ensure_retention"]

log = logging.getLogger("tocsin")


@dataclass(frozen=True)
class RetentionOutcome:
    """What :func:`ensure_retention` found and did.

    Attributes:
        namespace: the namespace.
        before: its retention before (None: it could not be read).
        after: its retention after (None: unknown).
        raised: whether Tocsin raised it.
        problem: why it was not checked or not raised ("" when all is well).
    """

    namespace: str
    before: timedelta | None
    after: timedelta | None
    raised: bool = False
    problem: str = ""


async def ensure_retention(client: Client, wanted: str | timedelta) -> RetentionOutcome:
    """Make the client's namespace keep closed workflows for at least ``wanted``; log what happened.

    Never raises for a server that refuses: the outcome's ``problem`` says why, and a warning was logged.
    """
    minimum = parse_duration(wanted)
    namespace = client.namespace
    try:
        before = await namespace_retention(client)
    except RPCError as exc:
        return _warn(RetentionOutcome(namespace, None, None, problem=f"cannot describe the namespace: {exc.message}"))
    if before is not None and before >= minimum:
        log.debug("namespace %s retention %s (at least %s)", namespace, retention_text(before), retention_text(minimum))
        return RetentionOutcome(namespace, before, before)
    seconds = int(minimum.total_seconds())
    request = UpdateNamespaceRequest(
        namespace=namespace,
        config=NamespaceConfig(workflow_execution_retention_ttl=Duration(seconds=seconds)),
    )
    try:
        await client.workflow_service.update_namespace(request)
    except RPCError as exc:
        return _warn(
            RetentionOutcome(namespace, before, before, problem=f"cannot update the namespace: {exc.message}"),
            minimum,
        )
    shown = retention_text(before) if before is not None else "unset"
    log.info("namespace %s default retention raised from %s to %s", namespace, shown, retention_text(minimum))
    return RetentionOutcome(namespace, before, minimum, raised=True)


def _warn(outcome: RetentionOutcome, minimum: timedelta | None = None) -> RetentionOutcome:
    have = retention_text(outcome.before) if outcome.before is not None else "unknown"
    want = f" (audit.history_retention wants {retention_text(minimum)})" if minimum is not None else ""
    log.warning(
        "namespace %s retention is %s%s; %s. Closed workflows are deleted after the namespace retention: "
        "raise it yourself (Temporal Cloud: the namespace's retention in the console or `tcld`; "
        "self-hosted: `temporal operator namespace update --namespace %s --retention 90d`)",
        outcome.namespace,
        have,
        want,
        outcome.problem,
        outcome.namespace,
    )
    return outcome
