"""The web dashboard and the build badges, mounted on the gateway by :func:`install`.

* ``GET /`` — the dashboard, rendered on the server (Jinja2, autoescaped): pipelines per repository and
  branch (status, 7-day success rate, average build time, failures today, build-time trend), recent failures
  with links, open incidents (level, age), running deployments (stage, weight). Its script
  (``/static/dashboard.js``, no build step, no CDN) draws the trend charts and refreshes the page every
  15 seconds. ``?repo=R`` shows one repository.
* ``GET /api/v1/dashboard`` — the same view as JSON (:class:`operations.dashboard.Dashboard`);
  ``GET /api/v1/dashboard/me`` — who a bearer token is (for the page's sign-in).
* ``GET /badge/<repo>/<branch>.svg`` — a shields-style badge ``build | passing`` (green), ``failing`` (red),
  ``flaky`` (orange: the last finished build failed on flaky tests only) or ``unknown`` (grey: no such
  pipeline, no finished build yet, or Temporal not answering — still 200, as shields answers), with
  ``Cache-Control: max-age=60`` and an ``ETag`` (``If-None-Match`` gets 304).

All three are read-only and public (no login): they show statuses, names, commits and counts, never a
secret. Pages carry a strict Content-Security-Policy (scripts and styles from this origin only).

Actions (acknowledge an incident, approve a deployment) appear only once someone signs in on the page with an
API token (``tocsin token create``): the script checks it against ``GET /api/v1/dashboard/me``, keeps it in
the tab's ``sessionStorage`` (gone when the tab closes) and sends it as ``Authorization: Bearer`` to the same
``/api/v1`` routes the remote-mode CLI uses, where the operations authorize it (roles, four eyes) as for any
other door. Nothing about a session is kept on the server and no cookie is set, so there is no CSRF surface.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from jinja2.utils import htmlsafe_json_dumps
from markupsafe import Markup
from pydantic import BaseModel
from temporalio.service import RPCError

from operations import Actor, OperationError
from operations.dashboard import BadgeStatus, Dashboard, TrendPoint, collect_dashboard, pipeline_badge
from starters.api_support import PREFIX, ApiError, authenticate, call, context, error_of
from workflows.policy.durations import format_duration

__all__ = ["install", "badge_svg", "render_page", "REFRESH_SECONDS", "MAX_REPO", "MAX_BADGE_PATH"]

HERE = Path(__file__).parent
REFRESH_SECONDS = 15
MAX_REPO = 200
"""Characters of ``?repo=``."""
MAX_BADGE_PATH = 400
"""Characters of ``<repo>/<branch>`` in a badge's path."""

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_PAGE_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}

_BADGE_COLOURS: dict[BadgeStatus, str] = {
    "passing": "#4c1",
    "failing": "#e05d44",
    "flaky": "#fe7d37",
    "unknown": "#9f9f9f",
}


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return format_duration(timedelta(seconds=int(max(seconds, 0)))) if seconds >= 1 else "0s"


def _seconds(value: float | None) -> str:
    if value is None:
        return "—"
    if value < 60:
        return f"{value:.1f}s" if value < 10 else f"{value:.0f}s"
    return format_duration(timedelta(seconds=round(value)))


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.0f}%"


def _when(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _safe_url(value: str | None) -> str | None:
    """A link CI sent, only when it is ``http(s)://`` (never ``javascript:`` or ``data:``)."""
    if not value:
        return None
    scheme = urlsplit(value.strip()).scheme.lower()
    return value.strip() if scheme in ("http", "https") else None


def _points(trend: list[TrendPoint]) -> Markup:
    """A trend as JSON safe inside a single-quoted HTML attribute (``<``, ``>``, ``&``, ``'`` escaped)."""
    return htmlsafe_json_dumps([p.model_dump(mode="json") for p in trend])


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html", "xml", "svg"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(age=_age, seconds=_seconds, percent=_percent, when=_when, safe_url=_safe_url, points=_points)
    return env


_templates = _environment()


# ------------------------------------------------------------------------------------------ badge


def _text_width(text: str) -> int:
    """Rough width of ``text`` in 11px Verdana (shields' font): narrow and wide letters told apart."""
    width = 0.0
    for ch in text:
        if ch in "ijlI.,:;|!'() ":
            width += 3.6
        elif ch in "mwMW@%":
            width += 10.0
        elif ch.isupper() or ch.isdigit():
            width += 7.5
        else:
            width += 6.6
    return int(round(width))


def badge_svg(label: str, message: str, colour: str) -> str:
    """A flat, shields-style two-part badge; ``label`` and ``message`` are escaped."""
    lw, mw = _text_width(label) + 10, _text_width(message) + 10
    total = lw + mw
    return _templates.get_template("badge.svg").render(
        label=label,
        message=message,
        colour=colour,
        lw=lw,
        mw=mw,
        total=total,
        lx=lw / 2,
        mx=lw + mw / 2,
    )


async def badge(request: Request, path: str) -> Response:
    """``GET /badge/<repo>/<branch>.svg``: the pipeline's build status as an SVG badge."""
    if not path.endswith(".svg"):
        raise ApiError(404, "a badge is /badge/<repo>/<branch>.svg", "path")
    name = path.removesuffix(".svg").strip("/")
    repo, _, branch = name.rpartition("/")
    if not repo or not branch:
        raise ApiError(404, "a badge is /badge/<repo>/<branch>.svg (both a repository and a branch)", "path")
    if len(name) > MAX_BADGE_PATH:
        raise ApiError(422, f"path: longer than {MAX_BADGE_PATH} characters", "path")
    # pipeline/<repo>/<branch> is the same id however the path splits between repository and branch.
    status = await pipeline_badge(context(request), repo, branch)
    body = badge_svg("build", status, _BADGE_COLOURS[status])
    etag = '"' + hashlib.sha256(body.encode()).hexdigest()[:32] + '"'
    headers = {"Cache-Control": "max-age=60", "ETag": etag, "X-Content-Type-Options": "nosniff"}
    if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="image/svg+xml", headers=headers)


# ------------------------------------------------------------------------------------------ dashboard


def _repo(repo: str | None) -> str | None:
    if repo is None or not repo.strip():
        return None
    if len(repo) > MAX_REPO:
        raise ApiError(422, f"repo: longer than {MAX_REPO} characters", "repo")
    return repo.strip()


def render_page(view: Dashboard | None, problem: str | None = None, repo: str | None = None) -> str:
    """The dashboard's HTML for a view (None with a ``problem``: the page that says why there is none)."""
    return _templates.get_template("dashboard.html").render(
        view=view, problem=problem, repo=repo, refresh=REFRESH_SECONDS
    )


async def page(request: Request, repo: str | None = Query(None, description="Only this repository.")) -> Response:
    """``GET /``: the dashboard, server-rendered."""
    wanted = _repo(repo)
    view: Dashboard | None = None
    problem = None
    try:
        view = await collect_dashboard(context(request), wanted)
    except (OperationError, RPCError) as exc:
        problem = error_of(exc).reason
    except RuntimeError as exc:  # a lazy client that cannot connect
        problem = f"Temporal unavailable: {str(exc).splitlines()[0][:200]}"
    return HTMLResponse(
        render_page(view, problem, wanted), status_code=200 if view is not None else 503, headers=_PAGE_HEADERS
    )


router = APIRouter(prefix=PREFIX, tags=["dashboard"])


@router.get("/dashboard", response_model=Dashboard)
async def dashboard_json(
    request: Request, repo: str | None = Query(None, description="Only this repository.")
) -> JSONResponse:
    """The web dashboard's view as JSON (public and read-only, like ``GET /``)."""
    wanted = _repo(repo)
    view = await call(request, lambda ctx: collect_dashboard(ctx, wanted))
    return JSONResponse(view.model_dump(mode="json"), headers={"Cache-Control": "no-store"})


class Me(BaseModel):
    """Who a credential is, for the dashboard's sign-in."""

    name: str
    verified: bool
    method: str | None = None


@router.get("/dashboard/me", response_model=Me)
async def dashboard_me(actor: Annotated[Actor, Depends(authenticate)]) -> Me:
    """The identity of ``Authorization: Bearer`` (401 without a valid one): the page's sign-in checks its
    token here, then offers the actions, which ``/api/v1`` authorizes as for any other door."""
    return Me(name=actor.name, verified=actor.verified, method=actor.method)


def install(app: FastAPI) -> None:
    """Add ``/``, ``/api/v1/dashboard``, ``/badge/…`` and ``/static`` to the gateway app."""
    app.add_api_route("/", page, methods=["GET"], include_in_schema=False)
    app.add_api_route("/badge/{path:path}", badge, methods=["GET"], include_in_schema=False)
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
