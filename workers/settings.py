"""Process settings from the environment (see CONTRACT.md, "Environment")."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Settings"]


@dataclass(frozen=True)
class Settings:
    """Where Temporal is and where Tocsin keeps local state."""

    address: str = field(default_factory=lambda: os.environ.get("TEMPORAL_ADDRESS", "localhost:7233"))
    namespace: str = field(default_factory=lambda: os.environ.get("TEMPORAL_NAMESPACE", "default"))
    task_queue: str = field(default_factory=lambda: os.environ.get("TOCSIN_TASK_QUEUE", "tocsin"))
    home: Path = field(default_factory=lambda: Path(os.environ.get("TOCSIN_HOME", ".tocsin")))
    gateway_token: str | None = field(default_factory=lambda: os.environ.get("TOCSIN_GATEWAY_TOKEN") or None)
