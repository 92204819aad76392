"""Where the gateway's and the worker's time goes: a summary of py-spy's folded stacks (``py-spy record --format raw``).

Each line of the file is ``frame;frame;...;leaf count`` (root first), a frame being
``function (file:line)``. py-spy leaves idle time out, so the shares below are of the time the
process was busy. A piece's share is inclusive (every sample with a matching frame anywhere on
its stack), so pieces nest and overlap; the "self" list is by leaf frame. Samples whose leaf is the
event loop waiting in ``select``, or a pool thread waiting on its queue, count as idle (py-spy
cannot always tell without pausing the process).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path

__all__ = ["read_folded", "summarize", "PIECES", "WORKER_PIECES"]

Stack = tuple[str, ...]

_APP = re.compile(r"\((starlette|fastapi)/|\(starters/gateway\.py")
_HANDLER = r"^alertmanager \(starters/gateway\.py"
_PATH = re.compile(_HANDLER + r"|\(operations/alerts\.py")
"""The webhook's own path: the handler, and the operation it calls (whose per-group calls run as tasks)."""
_IDLE = re.compile(
    r"^(EpollSelector\.select|select) \(selectors\.py"
    r"|^_worker \(concurrent/futures/thread\.py|^_connection_worker_thread \(aiosqlite/core\.py"
)
"""Waiting: the event loop in ``select``, and a worker thread (thread pool, aiosqlite's) blocked on its queue."""


def _frames(pattern: str) -> Callable[[Stack], bool]:
    """A test: does any frame of a stack match ``pattern``."""
    regex = re.compile(pattern)
    return lambda stack: any(regex.search(frame) for frame in stack)


_in_app, _on_path = _frames(_APP.pattern), _frames(_PATH.pattern)


def _outside_app(stack: Stack) -> bool:
    """Neither in the ASGI app nor on the webhook's path (uvicorn, h11, the event loop, callbacks)."""
    return not _in_app(stack) and not _on_path(stack)


def _app_not_path(stack: Stack) -> bool:
    """In the ASGI app (middleware, routing, response) but not on the webhook's own path."""
    return _in_app(stack) and not _on_path(stack)


PIECES: list[tuple[str, Callable[[Stack], bool]]] = [
    ("HTTP server outside the app (uvicorn, h11, asyncio transports, Temporal callbacks)", _outside_app),
    ("Starlette/FastAPI middleware, routing and response, outside the handler", _app_not_path),
    ("  of which the response (Response.__call__, send)", _frames(r"^(Response|JSONResponse)\.__call__ \(")),
    ("  of which the metrics middleware (CountRequests)", _frames(r"^CountRequests\.__call__ \(starters/gateway")),
    ("the webhook handler and its operation (alertmanager → dispatch_alerts), in all", _on_path),
    ("  auth (_authorized)", _frames(r"^_authorized \(")),
    ("  body read (Request.body/stream)", _frames(r"^Request\.(body|stream) \(starlette")),
    ("  JSON decode (json.loads, model_validate_json)", _frames(r"^(loads|JSONDecoder\.decode) \(json/|_json\b")),
    ("  pydantic models (AMWebhook, Alert: validate, build)", _frames(r"\(pydantic/|\(starters/alertmanager\.py")),
    ("  redaction at the door", _frames(r"redact")),
    ("  fingerprints", _frames(r"^fingerprint \(")),
    ("  config reads (ConfigStore.get, YAML)", _frames(r"^ConfigStore\.get \(|\(yaml/")),
    (
        "  route tree and grouping (group_alerts)",
        _frames(r"^(group_alerts|match_routes|build_tree|Config\.route_tree) \("),
    ),
    ("  search attributes and summary (_attributes)", _frames(r"^_attributes \(operations")),
    ("  Temporal client: start_workflow (signal-with-start)", _frames(r"^Client\.start_workflow \(temporalio")),
    ("    of which payload and search-attribute conversion", _frames(r"\(temporalio/converter/")),
    ("  prometheus counters", _frames(r"\(prometheus_client/")),
]
"""Named pieces of the gateway path, in report order."""

WORKER_PIECES: list[tuple[str, Callable[[Stack], bool]]] = [
    (
        "workflow tasks, in all (activations, new runs, payload visiting)",
        _frames(r"^_WorkflowWorker\._handle_activation \("),
    ),
    ("  new runs: the sandbox re-imports the flow modules", _frames(r"^_WorkflowWorker\._create_workflow_instance \(")),
    ("    of which compiling source (no cached code)", _frames(r"^SourceLoader\.source_to_code \(")),
    ("  activations in the sandbox (flow code)", _frames(r"^_RunningWorkflow\.activate \(")),
    (
        "  payload visiting (decode activation, encode completion)",
        _frames(r"^(decode_activation|encode_completion) \("),
    ),
    ("activities, in all", _frames(r"^_ActivityWorker\._handle_start_activity_task \(")),
    ("  deliveries (send_notification)", _frames(r"^DeliveryActivities\.send \(")),
    (
        "  audit journal appends (journal_append, SQL)",
        _frames(r"^JournalActivities\.append \(|\(aiosqlite/|\(sqlalchemy/"),
    ),
    ("  muting verdicts and config snapshots (local activities)", _frames(r"^IncidentActivities\.|^load_config \(")),
]
"""Named pieces of the worker's busy time, in report order."""


def read_folded(path: Path) -> Counter[Stack]:
    """The samples per stack of a py-spy ``--format raw`` file."""
    samples: Counter[Stack] = Counter()
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            samples[tuple(stack.split(";"))] += int(count)
    return samples


def _leaf(frame: str) -> str:
    """A frame without its line number: ``function (file)``."""
    return re.sub(r":\d+\)$", ")", frame)


def summarize(
    path: Path, top: int = 12, pieces: list[tuple[str, Callable[[Stack], bool]]] | None = None, what: str = "gateway"
) -> str:
    """The pieces' inclusive shares (default: the gateway's) and the top leaf functions, as printable text."""
    samples = read_folded(path)
    idle = sum(n for stack, n in samples.items() if _IDLE.search(stack[-1]))
    samples = Counter({stack: n for stack, n in samples.items() if not _IDLE.search(stack[-1])})
    total = sum(samples.values())
    if not total:
        return f"{what} profile: no samples in {path}"
    lines = [
        f"{what} profile ({path}): {total} busy samples ({idle} more waiting, left out);",
        "inclusive shares of the busy time (pieces nest and may overlap):",
    ]
    for name, matches in PIECES if pieces is None else pieces:
        share = sum(n for stack, n in samples.items() if matches(stack))
        lines.append(f"  {100 * share / total:5.1f}%  {name}")
    leaves: Counter[str] = Counter()
    for stack, n in samples.items():
        leaves[_leaf(stack[-1])] += n
    lines.append(f"top {top} self (leaf) functions:")
    lines += [f"  {100 * n / total:5.1f}%  {frame}" for frame, n in leaves.most_common(top)]
    return "\n".join(lines)
