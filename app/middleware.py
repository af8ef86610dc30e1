"""Pure-ASGI middleware: request id on every response, and one JSON log line per request."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import sys
import time
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TextIO

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
access_log = logging.getLogger("kezhan.access")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": request_id_var.get(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is when a record comes (test runners swap and close it;
    libraries still log from exit handlers)."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        """The stream is always the current stderr."""


def configure_logging(level: str) -> None:
    # Written synchronously: a hand-off to a writer thread measured slower (the queue put wakes
    # the thread, which then competes for the GIL) than one small write per request.
    handler = _StderrHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Alembic narrates every context it opens (readiness checks included): keep only problems.
    logging.getLogger("alembic").setLevel(logging.WARNING)


class RequestContext:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        # Not a secret, only unique: os.urandom costs a slow system call on these machines.
        request_id = incoming[:100] if incoming else f"{random.getrandbits(128):032x}"
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (b"x-request-id", request_id.encode("latin-1")),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if access_log.isEnabledFor(logging.INFO):
                _write_access_line(
                    request_id,
                    scope["method"],
                    scope["path"],
                    status,
                    time.perf_counter() - started,
                )
            request_id_var.reset(token)


def _write_access_line(
    request_id: str, method: str, path: str, status: int, seconds: float
) -> None:
    """The access log line, in JsonFormatter's shape, queued for `_flush_access_lines`.

    One line per request made the logging module (record, caller lookup, handler lock, formatter)
    about a third of a one-row read's cost, and one `write` system call per line still 5%
    (docs/benchmarks.md). Application logs keep using `logging`, written at once.
    """
    line = {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "level": "INFO",
        "logger": access_log.name,
        "message": "request",
        "request_id": request_id,
        "method": method,
        "path": path,
        "status": status,
        "duration_ms": round(seconds * 1000, 2),
    }
    global _flush_on
    loop = asyncio.get_running_loop()
    if _flush_on is not loop:  # (a loop closed before its flush ran leaves its lines to the next)
        loop.call_soon(_flush_access_lines)
        _flush_on = loop
    _pending_lines.append(orjson.dumps(line) + b"\n")


_pending_lines: list[bytes] = []
_flush_on: asyncio.AbstractEventLoop | None = None  # the loop a flush is scheduled on


def _flush_access_lines() -> None:
    """Write the lines of the requests that finished in this turn of the event loop, with one
    system call: whole lines, so they never interleave with other log records."""
    global _flush_on
    _flush_on = None
    data = memoryview(b"".join(_pending_lines))
    _pending_lines.clear()
    while data:
        data = data[os.write(2, data) :]
