"""``tocsin build --log FILE``: the end of a CI run's log, as plain text.

Only the end of the file is read (a CI log can be hundreds of megabytes); ANSI escape sequences (colours,
cursor moves, OSC hyperlinks) are removed, carriage-return progress lines keep their last state, and the
tail is cut on line boundaries to at most ``MAX_LOG_TAIL`` characters (a single longer last line keeps its
end). The text is redacted later, by the operation, like every other free text of a build event.
"""

from __future__ import annotations

import re
from pathlib import Path

from starters.reports.common import file_error
from workflows.pipeline.models import MAX_LOG_TAIL

__all__ = ["LOG_FLAG", "read_log_tail", "log_tail", "strip_ansi"]

LOG_FLAG = "--log"
_READ_BYTES = 256 * 1024
"""Bytes read from the end of the file: room for colour codes and long lines around the kept tail."""
_ANSI = re.compile(
    r"\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC (hyperlinks, titles), ended by BEL or ST
    r"|\x1b\[[0-?]*[ -/]*[@-~]"  # CSI (colours, cursor moves)
    r"|\x1b[@-Z\\-_]"  # two-character escapes
    r"|\x9b[0-?]*[ -/]*[@-~]"  # 8-bit CSI
)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def strip_ansi(text: str) -> str:
    """``text`` without ANSI escape sequences and other control characters (tabs and newlines stay)."""
    return _CONTROL.sub("", _ANSI.sub("", text))


def log_tail(text: str, limit: int = MAX_LOG_TAIL) -> str:
    """The last lines of ``text`` that fit in ``limit`` characters, plain (see the module doc)."""
    lines = []
    for raw in text.replace("\r\n", "\n").split("\n"):
        lines.append(strip_ansi(raw.rstrip("\r").rsplit("\r", 1)[-1]).rstrip())
    while lines and not lines[-1]:
        lines.pop()
    kept: list[str] = []
    size = 0
    for line in reversed(lines):
        cost = len(line) + (1 if kept else 0)
        if size + cost > limit:
            if not kept:
                kept.append(line[-limit:])
            break
        kept.append(line)
        size += cost
    return "\n".join(reversed(kept)).strip("\n")


def read_log_tail(path: Path, limit: int = MAX_LOG_TAIL) -> str | None:
    """The tail of the log file ``path`` (None when it holds no text).

    Raises:
        ReportError: The file is missing, a directory, or unreadable (names ``--log``).
    """
    try:
        with Path(path).open("rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            start = max(size - _READ_BYTES, 0)
            handle.seek(start)
            data = handle.read()
    except OSError as exc:
        raise file_error(LOG_FLAG, path, exc) from None
    text = data.decode("utf-8", errors="replace")
    if start > 0:
        text = text.split("\n", 1)[-1]  # the first line read is a part of a line
    return log_tail(text, limit) or None
