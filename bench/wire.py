"""A lean HTTP/1.1 sender for load benchmarks: one keep-alive connection per lane, JSON in, status out.

Alertmanager, the gateway's real sender, is a Go program, usually on another machine. In a
benchmark the sender shares the two cores with the system under test, so what it burns per
request is taken from the gateway, the worker and the Temporal server: ``httpx`` spends about
1.7 ms of CPU per webhook here, about what the gateway itself spends, and twice what the raw
baseline's Temporal client spends per call. This sender writes the request with one
``write`` and reads the response by its ``Content-Length``, about 0.1 ms per request.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import urlsplit

__all__ = ["Wire"]


class _Connection:
    """One keep-alive connection (re-opened when it was idle longer than ``idle`` or closed by the server)."""

    def __init__(self, host: str, port: int, idle: float) -> None:
        self.host, self.port, self.idle = host, port, idle
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.used = 0.0

    async def _open(self) -> None:
        await self.close()
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass
            self.reader = self.writer = None

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        """Send one request; its status and body."""
        if self.writer is None or time.monotonic() - self.used > self.idle:
            await self._open()
        assert self.reader is not None and self.writer is not None
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        if "content-length" not in headers:
            raise RuntimeError(f"response without Content-Length: {lines[0]} {headers}")
        body = await self.reader.readexactly(int(headers["content-length"]))
        if headers.get("connection", "").lower() == "close":
            await self.close()
        self.used = time.monotonic()
        return status, body


class Wire:
    """``lanes`` keep-alive connections to ``base_url``; lane ``i`` sends one request at a time."""

    def __init__(self, base_url: str, headers: dict[str, str], lanes: int, idle: float) -> None:
        url = urlsplit(base_url)
        self._host = url.netloc
        self._headers = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self._lanes = [_Connection(url.hostname or "127.0.0.1", url.port or 80, idle) for _ in range(lanes)]

    async def post_json(self, lane: int, path: str, body: Any) -> tuple[int, bytes]:
        """POST ``body`` as JSON on lane ``lane``; the response's status and body."""
        data = json.dumps(body, separators=(",", ":")).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self._host}\r\n{self._headers}"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
        )
        return await self._lanes[lane].exchange(head.encode("latin-1") + data)

    async def aclose(self) -> None:
        """Close every connection."""
        for connection in self._lanes:
            await connection.close()
