"""CPU seconds per process of a benchmark's topology, from ``/proc`` (Linux).

A round's rate on a two-core machine is set by what every process burns during it, the sending
client's included; :class:`CpuMeter` says where those seconds went, per round and per process.
"""

from __future__ import annotations

import os
import statistics
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

__all__ = ["cpu_seconds", "dev_server_pid", "CpuMeter"]

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds ``pid`` has used so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime (fields 14 and 15 of stat)


def dev_server_pid() -> int | None:
    """The ``temporal`` dev server this process started (its child), if any."""
    me = str(os.getpid())
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        if name == "temporal" and text.rsplit(")", 1)[1].split()[1] == me:
            return int(stat.parent.name)
    return None


class CpuMeter:
    """CPU seconds of named processes over measured spans, kept per label (a benchmark's side)."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.spans: dict[str, list[dict[str, float]]] = defaultdict(list)
        self._start: dict[str, float] = {}

    def begin(self) -> None:
        """Start a span."""
        self._start = {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def end(self, label: str) -> None:
        """End the span begun last and keep it under ``label``."""
        self.spans[label].append({name: cpu_seconds(pid) - self._start[name] for name, pid in self.pids.items()})

    def table(self, labels: Sequence[str]) -> str:
        """Median CPU seconds per span, per label (in this order) and process, and their total."""
        lines = []
        for label in labels:
            spans = self.spans[label]
            cells = [f"{name} {statistics.median(s[name] for s in spans):.2f}" for name in self.pids]
            total = statistics.median(sum(s.values()) for s in spans)
            lines.append(f"  {label:<8} {'  '.join(cells)}   total {total:.2f} s")
        return "\n".join(lines)
