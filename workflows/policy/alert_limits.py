"""Size limits of alerts, and the pure helpers that enforce them. Pure: no I/O, no Temporal.

Temporal refuses a payload over 2 MB (and warns above 512 KB), a search attribute value over
2 KB, and a history over 50 MB. Whatever arrives, what Tocsin hands to Temporal stays far
below those limits:

=========================  ==========  ==================================================
what                       limit       where
=========================  ==========  ==================================================
label value                4 KiB       at the door (``operations.alerts``)
annotation value           16 KiB      at the door
label / annotation name    128 B       at the door
labels per alert           64          at the door (``alertname``, ``severity``,
                                       ``service``, ``env``… kept first)
annotations per alert      32          at the door
``generatorURL``           4 KiB       at the door
one alert, all included    64 KiB      at the door (values shrink further until it fits)
fingerprint                64 B        longer ones are replaced by their hash
search attribute value     256 B       at the door (``TocsinService``, ``TocsinEnvironment``)
one signal of alerts       256 KiB     at the door: a group's alerts go in several signals
=========================  ==========  ==================================================

A cut value ends with a visible marker saying how much was cut: ``…[truncated 96 KiB]``.
Sizes are UTF-8 bytes. A value cut again keeps its first marker (the original size).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping

__all__ = [
    "LABEL_VALUE_MAX",
    "ANNOTATION_VALUE_MAX",
    "NAME_MAX",
    "URL_MAX",
    "FINGERPRINT_MAX",
    "ALERT_MAX_BYTES",
    "MAX_LABELS",
    "MAX_ANNOTATIONS",
    "SEARCH_ATTRIBUTE_MAX",
    "SIGNAL_BUDGET",
    "PRIORITY_LABELS",
    "utf8_len",
    "clean_text",
    "human_size",
    "truncate",
    "bounded_fingerprint",
    "compact_alert_parts",
    "alert_size",
    "display_labels",
]

LABEL_VALUE_MAX = 4 * 1024
ANNOTATION_VALUE_MAX = 16 * 1024
NAME_MAX = 128
URL_MAX = 4 * 1024
FINGERPRINT_MAX = 64
ALERT_MAX_BYTES = 64 * 1024
MAX_LABELS = 64
MAX_ANNOTATIONS = 32
SEARCH_ATTRIBUTE_MAX = 256
SIGNAL_BUDGET = 256 * 1024
VALUE_FLOOR = 128
"""Compaction never shrinks a value below this many bytes (it drops entries instead)."""
PRIORITY_LABELS = ("alertname", "severity", "service", "env", "environment", "namespace", "job", "instance")
"""Labels kept first when an alert has more than ``MAX_LABELS``."""
PRIORITY_ANNOTATIONS = ("summary", "description", "runbook_url")

_MARKER = re.compile(r"…\[truncated [0-9.]+ (?:B|KiB|MiB|GiB)\]$")
_MARKER_ROOM = 32
"""Bytes a marker can take: ``…`` (3) + ``[truncated `` (11) + ``1023.9 MiB`` (≤ 10) + ``]``."""
_ENTRY_OVERHEAD = 6
"""JSON bytes around one ``"name":"value",`` pair."""
_ALERT_OVERHEAD = 200
"""JSON bytes of an alert's fixed fields (status, times, field names)."""


def utf8_len(text: str) -> int:
    """Length of ``text`` in UTF-8 bytes (a lone surrogate counts as the 3 bytes it would take)."""
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        return len(text.encode("utf-8", "surrogatepass"))


def clean_text(text: str) -> str:
    """``text`` without lone surrogates (each replaced by U+FFFD), so it always encodes as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # Through UTF-16, a pair of surrogates becomes its character and a lone one U+FFFD.
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


def human_size(size: int) -> str:
    """``512 B``, ``96 KiB``, ``9.8 MiB``."""
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{round(size / 1024)} KiB"
    if size < 1024**3:
        return f"{size / 1024 / 1024:.1f} MiB"
    return f"{size / 1024**3:.1f} GiB"


def truncate(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes, ending with ``…[truncated <size cut>]``.

    Text within the limit is returned as is (lone surrogates replaced). A value that already
    carries a marker keeps it, so the marker always tells the size cut at the first door.

    Args:
        text: any text.
        limit: the most UTF-8 bytes the result may take (at least 64).

    Returns:
        The text, or its head and the marker.
    """
    text = clean_text(text)
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    old = _MARKER.search(text)
    if old is not None:  # cut again: keep the first door's marker
        marker = old.group(0)
        head = text[: old.start()].encode("utf-8")
        keep = max(limit - utf8_len(marker), 0)
    else:
        head = data
        keep = max(limit - _MARKER_ROOM, 0)
        marker = f"…[truncated {human_size(len(data) - keep)}]"
    return head[:keep].decode("utf-8", "ignore") + marker


def bounded_fingerprint(fingerprint: str) -> str:
    """The fingerprint, or (over ``FINGERPRINT_MAX`` bytes or not UTF-8) a 16-hex-digit hash of it."""
    if utf8_len(fingerprint) <= FINGERPRINT_MAX and clean_text(fingerprint) == fingerprint:
        return fingerprint
    return hashlib.sha256(fingerprint.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _entries_size(items: Mapping[str, str]) -> int:
    return sum(utf8_len(k) + utf8_len(v) + _ENTRY_OVERHEAD for k, v in items.items())


def alert_size(labels: Mapping[str, str], annotations: Mapping[str, str], *extra: str) -> int:
    """An upper estimate of an alert's JSON size in bytes (labels, annotations, other strings)."""
    return (
        _ALERT_OVERHEAD
        + _entries_size(labels)
        + _entries_size(annotations)
        + sum(utf8_len(s) + _ENTRY_OVERHEAD for s in extra)
    )


def _first(items: Mapping[str, str], priority: tuple[str, ...], most: int) -> dict[str, str]:
    """At most ``most`` entries: the priority names first, then the others in their order."""
    if len(items) <= most:
        return dict(items)
    keys = [k for k in priority if k in items] + [k for k in items if k not in priority]
    chosen = set(keys[:most])
    return {k: v for k, v in items.items() if k in chosen}


def _fits(text: str, limit: int) -> bool:
    try:
        return len(text.encode("utf-8")) <= limit
    except UnicodeEncodeError:
        return False


def _within(items: Mapping[str, str], value_max: int, most: int) -> bool:
    """No more than ``most`` entries, every name and value within its limit and valid UTF-8."""
    return len(items) <= most and all(_fits(k, NAME_MAX) and _fits(v, value_max) for k, v in items.items())


def _cut(items: Mapping[str, str], value_max: int) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in items.items():
        out[truncate(key, NAME_MAX)] = truncate(value, value_max)
    return out


def compact_alert_parts(
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
    *,
    label_max: int = LABEL_VALUE_MAX,
    annotation_max: int = ANNOTATION_VALUE_MAX,
    total_max: int = ALERT_MAX_BYTES,
) -> tuple[dict[str, str], dict[str, str]]:
    """Labels and annotations cut to the limits; within ``total_max`` bytes as far as values can shrink.

    Names are cut to ``NAME_MAX``, values to ``label_max`` / ``annotation_max``, at most
    ``MAX_LABELS`` labels and ``MAX_ANNOTATIONS`` annotations are kept (the well-known ones
    first). While the alert is still over ``total_max``, annotation values are halved, then
    label values, down to ``VALUE_FLOOR`` bytes each; then annotations other than summary and
    description are dropped.

    Returns:
        (labels, annotations): new dicts, equal to the given ones when nothing was over a limit.
    """
    if (
        _within(labels, label_max, MAX_LABELS)
        and _within(annotations, annotation_max, MAX_ANNOTATIONS)
        and alert_size(labels, annotations) <= total_max
    ):
        return dict(labels), dict(annotations)
    kept_labels = _first(labels, PRIORITY_LABELS, MAX_LABELS)
    kept_annotations = _first(annotations, PRIORITY_ANNOTATIONS, MAX_ANNOTATIONS)
    lmax, amax = label_max, annotation_max
    while True:
        out_l, out_a = _cut(kept_labels, lmax), _cut(kept_annotations, amax)
        if alert_size(out_l, out_a) <= total_max:
            return out_l, out_a
        if amax > VALUE_FLOOR:
            amax = max(amax // 2, VALUE_FLOOR)
        elif lmax > VALUE_FLOOR:
            lmax = max(lmax // 2, VALUE_FLOOR)
        elif len(kept_annotations) > 2:
            kept_annotations = _first(kept_annotations, PRIORITY_ANNOTATIONS[:2], 2)
        else:
            return out_l, out_a


def display_labels(labels: Mapping[str, str], budget: int = 16 * 1024) -> dict[str, str]:
    """Label values cut so that all of them fit ``budget`` bytes in a message (each keeps ≥ 128 B)."""
    if _entries_size(labels) <= budget or not labels:
        return dict(labels)
    each = max(budget // len(labels), VALUE_FLOOR)
    return {truncate(k, NAME_MAX): truncate(v, each) for k, v in labels.items()}
