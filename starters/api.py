"""The HTTP API ``/api/v1``: one route per operation, behind every remote-mode CLI command.

``Authorization: Bearer <API token or OIDC ID token>`` is resolved to a verified actor (see
:mod:`starters.api_support`); each operation authorizes it (roles, four eyes) whatever the door.
Answers are the operations' own result models as JSON; errors are ``{"error", "field"}``.

=======  ===============================================  =====================================
method   path (under ``/api/v1``)                          does
=======  ===============================================  =====================================
POST     ``/builds``                                       one CI event (``tocsin build``)
POST     ``/notify``                                       one notification (``tocsin notify``)
POST     ``/alerts``                                       raise an alert (``tocsin alert``)
GET      ``/incidents/{id}``                               an incident's state
POST     ``/incidents/{id}/ack|resolve|escalate|snooze``   incident actions
POST     ``/deployments``                                  start one (201; 200 when already running)
GET      ``/deployments/{id}``                             its state
GET      ``/deployments/{id}/result?wait=S``               its result (202 while it runs)
POST     ``/deployments/{id}/approve|reject``              approval decisions
POST     ``/deployments/{id}/pause|resume|promote|abort``  canary controls
POST     ``/rollbacks``                                    roll back a service in an environment
POST     ``/silences``, GET ``/silences``                  add, list silences
POST     ``/silences/{id}/expire``                         end one now
GET      ``/status``                                       incidents, deployments, pipelines
GET      ``/flaky?repo=R``                                 flaky and quarantined tests
POST     ``/flaky/quarantine``, ``/flaky/release``          mute a test in a repository's pipelines, or not
GET      ``/report?repo=R&period=7d``                      a repository's pipeline health report
GET      ``/audit``                                        the audit export (chained JSON lines)
GET      ``/metrics``                                      DORA keys, build success rate, MTTA/MTTR
=======  ===============================================  =====================================
"""

from __future__ import annotations

from datetime import UTC
from typing import Annotated, Any, get_args

from fastapi import APIRouter, Body, Depends, FastAPI, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from operations import Actor, Context
from operations.alerts import raise_alert
from operations.audit import export_audit
from operations.builds import send_build_event, send_notification
from operations.context import temporal_errors
from operations.deployments import (
    Control,
    approve,
    control,
    deployment_handle,
    deployment_state,
    reject,
    rollback,
    start_deployment,
)
from operations.errors import BadInput
from operations.flaky import FlakyList, Signalled, list_flaky, parse_until, quarantine_test, release_test
from operations.incidents import acknowledge, escalate, incident_state, resolve, snooze
from operations.metrics import DEFAULT_LAST_N, DEFAULT_WINDOW, collect_metrics
from operations.reports import parse_period, pipeline_report
from operations.silences import add_silence, expire_silence, list_silences
from operations.status import collect_status
from starters.api_models import (
    AlertBody,
    ApproveBody,
    AuditExport,
    BuildBody,
    ControlBody,
    Controlled,
    Created,
    DeployBody,
    ErrorBody,
    FlakyQuarantineBody,
    FlakyReleaseBody,
    NoteBody,
    NotifyBody,
    Raised,
    RejectBody,
    RollbackAnswer,
    RollbackBody,
    Running,
    SilenceBody,
    SnoozeBody,
    Started,
)
from starters.api_support import (
    PREFIX,
    ApiError,
    authenticate,
    call,
    check_json,
    claimed,
    handlers,
    parse_time,
    wait_for,
)
from starters.journaling import request_journal
from workflows.deployment import DecisionResult, DeployInput, DeploymentState, DeployResult
from workflows.incident import ActionResult, IncidentState
from workflows.policy.durations import DurationError, parse_duration
from workflows.policy.health_report import HealthReport
from workflows.silences import SilenceRecord, SilencesState

__all__ = ["router", "install", "PREFIX"]

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"description": what, "model": ErrorBody}
    for code, what in (
        (400, "the body is not JSON"),
        (401, "no credential, or a wrong one"),
        (403, "refused: by is not the credential's identity, a role is missing, four eyes…"),
        (404, "no such incident, deployment or silence"),
        (409, "conflicts with the current state"),
        (413, "the body is too large"),
        (422, "a field is wrong (named in field)"),
        (503, "Temporal unavailable"),
    )
}

router = APIRouter(prefix=PREFIX, dependencies=[Depends(check_json)], responses=_ERRORS)

Who = Annotated[Actor, Depends(authenticate)]


# ---------------------------------------------------------------------------------------- CI


@router.post("/builds", status_code=202, response_model=Created, tags=["builds"])
async def post_build(request: Request, actor: Who, body: BuildBody) -> Created:
    """One CI event to the pipeline's workflow (``pipeline/<repo>/<branch>``), as ``tocsin build``."""
    event = body.event()
    return Created(id=await call(request, lambda ctx: send_build_event(ctx, actor, event)))


@router.post("/notify", status_code=202, response_model=Created, tags=["builds"])
async def post_notify(request: Request, actor: Who, body: NotifyBody) -> Created:
    """One durable notification to one receiver (``notify/<uuid>``), as ``tocsin notify``."""
    return Created(id=await call(request, lambda ctx: send_notification(ctx, actor, body.receiver, body.message)))


@router.get("/flaky", response_model=FlakyList, tags=["builds"])
async def get_flaky(request: Request, actor: Who, repo: str | None = None) -> FlakyList:
    """Flaky and quarantined tests of the running pipelines (of one repository), as ``tocsin flaky list``."""
    return await call(request, lambda ctx: list_flaky(ctx, repo))


@router.post("/flaky/quarantine", response_model=Signalled, tags=["builds"])
async def post_flaky_quarantine(request: Request, actor: Who, body: FlakyQuarantineBody) -> Signalled:
    """Mute a test in every running pipeline of a repository (``until``: ISO-8601 time or a duration)."""
    who = claimed(actor, body.by)
    try:
        until = parse_until(body.until, field="until")
    except BadInput as exc:
        raise ApiError(422, f"until: {exc.message}", "until") from None
    return await call(request, lambda ctx: quarantine_test(ctx, who, body.repo, body.test, until, body.reason))


@router.post("/flaky/release", response_model=Signalled, tags=["builds"])
async def post_flaky_release(request: Request, actor: Who, body: FlakyReleaseBody) -> Signalled:
    """Lift a test's quarantine in the pipelines of a repository that hold it."""
    who = claimed(actor, body.by)
    return await call(request, lambda ctx: release_test(ctx, who, body.repo, body.test))


# ---------------------------------------------------------------------------------------- incidents


@router.post("/alerts", status_code=202, response_model=Raised, tags=["incidents"])
async def post_alert(request: Request, actor: Who, body: AlertBody) -> Raised:
    """Raise an alert by hand; answers the incidents it reached."""
    who = claimed(actor, body.by)
    ids = await call(request, lambda ctx: raise_alert(ctx, who, body.name, body.severity, body.labels, body.summary))
    return Raised(incidents=list(ids))


@router.get("/incidents/{incident_id:path}", response_model=IncidentState, tags=["incidents"])
async def get_incident(request: Request, actor: Who, incident_id: str) -> IncidentState:
    """An incident's state."""
    return await call(request, lambda ctx: incident_state(ctx, incident_id))


def _note(body: NoteBody | None) -> NoteBody:
    return body if body is not None else NoteBody()


@router.post("/incidents/{incident_id:path}/ack", response_model=ActionResult, tags=["incidents"])
async def post_ack(
    request: Request, actor: Who, incident_id: str, body: Annotated[NoteBody | None, Body()] = None
) -> ActionResult:
    """Acknowledge: the incident's escalation stops."""
    note = _note(body)
    who = claimed(actor, note.by)
    return await call(request, lambda ctx: acknowledge(ctx, who, incident_id, note.note))


@router.post("/incidents/{incident_id:path}/resolve", response_model=ActionResult, tags=["incidents"])
async def post_resolve(
    request: Request, actor: Who, incident_id: str, body: Annotated[NoteBody | None, Body()] = None
) -> ActionResult:
    """Resolve; everyone notified is told."""
    note = _note(body)
    who = claimed(actor, note.by)
    return await call(request, lambda ctx: resolve(ctx, who, incident_id, note.note))


@router.post("/incidents/{incident_id:path}/escalate", response_model=ActionResult, tags=["incidents"])
async def post_escalate(
    request: Request, actor: Who, incident_id: str, body: Annotated[NoteBody | None, Body()] = None
) -> ActionResult:
    """Notify the next escalation level now."""
    note = _note(body)
    who = claimed(actor, note.by)
    return await call(request, lambda ctx: escalate(ctx, who, incident_id, note.note))


@router.post("/incidents/{incident_id:path}/snooze", response_model=ActionResult, tags=["incidents"])
async def post_snooze(request: Request, actor: Who, incident_id: str, body: SnoozeBody) -> ActionResult:
    """Hold the escalation for ``duration``; the ladder then resumes where it was."""
    who = claimed(actor, body.by)
    try:
        duration = parse_duration(body.duration)
    except DurationError as exc:
        raise ApiError(422, f"duration: {exc}", "duration") from None
    return await call(request, lambda ctx: snooze(ctx, who, incident_id, duration, body.note))


# ---------------------------------------------------------------------------------------- deployments


def _deploy_input(actor: Actor, body: DeployBody) -> DeployInput:
    reason = (body.reason or "").strip() or None
    if body.emergency and reason is None:
        raise ApiError(422, "reason: an emergency deployment needs a reason", "reason")
    if reason is not None and not body.emergency:
        raise ApiError(422, "reason: only with emergency", "reason")
    fields = body.model_dump(exclude={"by", "reason"})
    return DeployInput(**fields, by=actor.name, reason=reason)


@router.post(
    "/deployments",
    status_code=201,
    response_model=Started,
    responses={200: {"model": Started, "description": "already running"}},
    tags=["deployments"],
)
async def post_deployment(request: Request, response: Response, actor: Who, body: DeployBody) -> Started:
    """Start ``deploy/<service>/<env>/<version>``: 201, or 200 when it is already running."""
    who = claimed(actor, body.by)
    deploy = _deploy_input(who, body)

    async def start(ctx: Context) -> tuple[str, bool]:
        handle, started = await start_deployment(ctx, who, deploy)
        return handle.id, started

    wid, started = await call(request, start)
    response.status_code = 201 if started else 200
    return Started(id=wid, started=started)


@router.get(
    "/deployments/{deployment_id:path}/result",
    response_model=DeployResult,
    responses={202: {"model": Running, "description": "still running"}},
    tags=["deployments"],
)
async def get_deployment_result(
    request: Request,
    actor: Who,
    deployment_id: str,
    wait: Annotated[float, Query(ge=0, le=30, description="Seconds to wait for the end.")] = 0,
) -> DeployResult | JSONResponse:
    """The deployment's result once it has finished (202 ``running`` while it runs)."""

    async def result(ctx: Context) -> DeployResult | None:
        with temporal_errors():
            outcome: DeployResult | None = await wait_for(
                deployment_handle(ctx, deployment_id).result(), max(wait, 0.2)
            )
            return outcome

    done = await call(request, result)
    if done is None:
        return JSONResponse(Running(id=deployment_id).model_dump(mode="json"), status_code=202)
    return done


@router.get("/deployments/{deployment_id:path}", response_model=DeploymentState, tags=["deployments"])
async def get_deployment(request: Request, actor: Who, deployment_id: str) -> DeploymentState:
    """The deployment's state (stage, approvals, canary weight, timeline)."""
    return await call(request, lambda ctx: deployment_state(ctx, deployment_id))


@router.post("/deployments/{deployment_id:path}/approve", response_model=DecisionResult, tags=["deployments"])
async def post_approve(
    request: Request, actor: Who, deployment_id: str, body: Annotated[ApproveBody | None, Body()] = None
) -> DecisionResult:
    """Approve; answered at once (403: not an approver, four eyes…)."""
    decision = body if body is not None else ApproveBody()
    who = claimed(actor, decision.by)
    comment = (decision.comment or "").strip() or None
    return await call(request, lambda ctx: approve(ctx, who, deployment_id, comment))


@router.post("/deployments/{deployment_id:path}/reject", response_model=DecisionResult, tags=["deployments"])
async def post_reject(request: Request, actor: Who, deployment_id: str, body: RejectBody) -> DecisionResult:
    """Reject; answered at once."""
    who = claimed(actor, body.by)
    return await call(request, lambda ctx: reject(ctx, who, deployment_id, body.reason))


def _control_route(what: Control) -> Any:
    async def post_control(
        request: Request, actor: Who, deployment_id: str, body: Annotated[ControlBody | None, Body()] = None
    ) -> Controlled:
        steer = body if body is not None else ControlBody()
        who = claimed(actor, steer.by)
        await call(request, lambda ctx: control(ctx, who, deployment_id, what, steer.reason.strip()))
        return Controlled(id=deployment_id, action=what, by=who.name)

    post_control.__name__ = f"post_{what}"
    post_control.__doc__ = f"Send ``{what}`` to a deployment's canary (403/409 when it does not apply now)."
    return post_control


for _what in get_args(Control):
    router.add_api_route(
        f"/deployments/{{deployment_id:path}}/{_what}",
        _control_route(_what),
        methods=["POST"],
        response_model=Controlled,
        tags=["deployments"],
    )


@router.post("/rollbacks", response_model=RollbackAnswer, tags=["deployments"])
async def post_rollback(request: Request, actor: Who, body: RollbackBody) -> RollbackAnswer:
    """Roll back what is going out, else the last deployment that went out (``nothing``: see detail)."""
    who = claimed(actor, body.by)
    outcome = await call(request, lambda ctx: rollback(ctx, who, body.service, body.env, body.reason))
    return RollbackAnswer(workflow_id=outcome.workflow_id, action=outcome.action, detail=outcome.detail)


# ---------------------------------------------------------------------------------------- silences, status, audit


@router.post("/silences", status_code=201, response_model=SilenceRecord, tags=["silences"])
async def post_silence(request: Request, actor: Who, body: SilenceBody) -> SilenceRecord:
    """Add a silence (maintenance window)."""
    who = claimed(actor, body.by)
    return await call(request, lambda ctx: add_silence(ctx, who, body.matchers, body.duration, body.comment))


@router.get("/silences", response_model=SilencesState, tags=["silences"])
async def get_silences(request: Request, actor: Who) -> SilencesState:
    """Every silence the store holds (active and recently expired)."""
    return await call(request, list_silences)


@router.post("/silences/{silence_id:path}/expire", response_model=SilenceRecord, tags=["silences"])
async def post_expire(
    request: Request, actor: Who, silence_id: str, body: Annotated[NoteBody | None, Body()] = None
) -> SilenceRecord:
    """End a silence now."""
    who = claimed(actor, _note(body).by)
    return await call(request, lambda ctx: expire_silence(ctx, who, silence_id))


@router.get("/status", response_model=dict[str, Any], tags=["status"])
async def get_status(request: Request, actor: Who, service: str | None = None) -> dict[str, Any]:
    """Open incidents, running deployments, pipeline health (``tocsin status --json``)."""
    return await call(request, lambda ctx: collect_status(ctx, service))


@router.get("/report", response_model=HealthReport, tags=["status"])
async def get_report(
    request: Request,
    actor: Who,
    repo: Annotated[str, Query(description="The repository (owner/name).")],
    period: Annotated[str, Query(description="How far back: 1d, 7d, 30d…")] = "7d",
) -> HealthReport:
    """A repository's pipeline health report (``tocsin report --json``); 422 naming ``period`` or ``repo``."""
    try:
        parse_period(period, "period")
    except BadInput as exc:
        raise ApiError(422, f"period: {exc.message}", "period") from None
    try:
        return await call(request, lambda ctx: pipeline_report(ctx, repo, period))
    except ApiError as exc:
        exc.field = exc.field.removeprefix("--") if exc.field else exc.field
        raise


@router.get("/audit", response_model=AuditExport, tags=["audit"])
async def get_audit(
    request: Request,
    actor: Who,
    since: Annotated[str | None, Query(description="ISO-8601 instant (UTC when no zone); inclusive.")] = None,
    until: Annotated[str | None, Query(description="ISO-8601 instant (UTC when no zone); exclusive.")] = None,
    service: str | None = None,
    env: str | None = None,
    by: Annotated[str | None, Query(alias="actor", description="Only records by this actor (name).")] = None,
    action: Annotated[str | None, Query(description="Only this action (deployment.approved, refused…).")] = None,
) -> AuditExport:
    """The audit export from the journal (and, before it, the histories): chained JSON lines
    ``{time, workflow_id, kind, actor, identity, action, detail, journal, prev_sha256}``."""
    start, end = parse_time("since", since), parse_time("until", until)
    start = start.replace(tzinfo=UTC) if start is not None and start.tzinfo is None else start
    end = end.replace(tzinfo=UTC) if end is not None and end.tzinfo is None else end
    try:
        async with request_journal(request) as journal:
            lines = await call(
                request,
                lambda ctx: export_audit(ctx, start, service, env, until=end, actor=by, action=action, journal=journal),
            )
    except (OSError, SQLAlchemyError, ValueError) as exc:
        raise ApiError(503, f"audit journal unavailable: {str(exc).splitlines()[0][:200]}") from None
    return AuditExport(lines=lines)


@router.get("/metrics", response_model=dict[str, Any], tags=["status"])
async def get_metrics(
    request: Request,
    actor: Who,
    service: str | None = None,
    env: str | None = None,
    window: Annotated[str, Query(description="Over this long (30d, 7d, 12h).")] = DEFAULT_WINDOW,
    last: Annotated[int, Query(ge=1, le=1000, description="Lead time over the last N changes.")] = DEFAULT_LAST_N,
) -> dict[str, Any]:
    """The DORA keys per service and environment, build success rate, MTTA/MTTR (``tocsin metrics --json``)."""
    try:
        async with request_journal(request) as journal:
            report: dict[str, Any] = await call(
                request,
                lambda ctx: collect_metrics(
                    journal, service=service, env=env, window=window, last_n=last, window_field="window"
                ),
            )
    except (OSError, SQLAlchemyError, ValueError) as exc:
        raise ApiError(503, f"audit journal unavailable: {str(exc).splitlines()[0][:200]}") from None
    return report


@router.get("/audit/verify", response_model=dict[str, Any], tags=["audit"])
async def get_audit_verify(request: Request, actor: Who) -> dict[str, Any]:
    """Verify the live journal's chain: ``{ok, count, seq, reason}`` (``seq``: the first broken record)."""
    try:
        async with request_journal(request) as journal:
            result = await journal.verify()
    except (OSError, SQLAlchemyError, ValueError) as exc:
        raise ApiError(503, f"audit journal unavailable: {str(exc).splitlines()[0][:200]}") from None
    return {"ok": result.ok, "count": result.count, "seq": result.seq, "reason": result.reason}


def install(app: FastAPI) -> None:
    """Add ``/api/v1`` to the gateway app: the routes and the JSON error handlers."""
    app.include_router(router)
    for kind, handler in handlers().items():
        app.add_exception_handler(kind, handler)
