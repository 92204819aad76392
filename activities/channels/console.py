"""The ``console`` channel: print, and append to ``.tocsin/outbox.jsonl``."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime

from activities.channels.base import Channel, SendContext, Sent
from workflows.models import Message

__all__ = ["ConsoleChannel"]

_MARK = {"info": "ℹ", "success": "✔", "warning": "⚠", "error": "✖", "critical": "‼"}


class ConsoleChannel(Channel):
    """Prints each notification and appends it, once per idempotency key, to the outbox."""

    type = "console"

    def _seen(self) -> set[str]:
        seen: set[str] | None = self.deps.extra.get("console_seen")
        if seen is None:
            seen = set()
            path = self.deps.home / "outbox.jsonl"
            if path.exists():
                for line in path.read_text(encoding="utf-8").splitlines():
                    try:
                        seen.add(json.loads(line)["key"])
                    except (ValueError, KeyError):
                        continue
            self.deps.extra["console_seen"] = seen
        return seen

    async def send(self, message: Message, idempotency_key: str, attempt: int, ctx: SendContext | None = None) -> Sent:
        seen = self._seen()
        if idempotency_key in seen:
            return Sent(message_id=idempotency_key, duplicate=True)
        lines = [f"{_MARK.get(message.severity, '-')} [{message.severity}] {message.title}"]
        if message.text:
            lines.extend(f"    {line}" for line in message.text.splitlines())
        for fld in message.fields:
            lines.append(f"    {fld.title}: {fld.value}")
        for link in message.links:
            lines.append(f"    {link.text}: {link.url}")
        self.deps.home.mkdir(parents=True, exist_ok=True)
        record = {
            "key": idempotency_key,
            "at": datetime.now(UTC).isoformat(),
            "channel": self.name,
            "message": message.model_dump(mode="json"),
        }
        with (self.deps.home / "outbox.jsonl").open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        seen.add(idempotency_key)
        print("\n".join(lines), file=sys.stdout, flush=True)
        return Sent(message_id=idempotency_key)
