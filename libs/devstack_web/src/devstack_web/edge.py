"""`EdgeMiddleware`: the outermost layer of the apps, one per request instead of three.

It does what `RequestIdMiddleware` and `MetricsMiddleware` (devstack_client.asgi) do, and writes
the access log that uvicorn no longer writes (`server.py`):

- the request id: a sane inbound `X-Request-ID` (1-128 of letters, digits and `._:+/=-`) is
  honoured, else a UUID v4 is generated; it is bound to structlog's context and to
  `current_request_id()` for the request, put in `scope["state"]["request_id"]`, and set on the
  response (any `X-Request-ID` the app set is replaced);
- the metrics: request count, latency and in-flight requests labelled by the route *template*
  (`<unmatched>` when no route matched: raw paths never become labels);
- one access line per request, after the answer, through the same redacting JSON pipeline as
  every other line (`devstack_client.configure_logging`): `"event": "request"` with `method`,
  `path`, `query` (when there is one), `status`, `duration_ms`, `client`, `http_version` and
  the `request_id`. It is logged at INFO by the `devstack_web.access` logger, so
  `DEVSTACK_API_LOG_LEVEL=WARNING` turns it off. The duration (and the latency metric) starts
  when the request arrived, so it counts any wait before the app (`QUEUED_AT`).

One layer instead of three saves two coroutine frames, two `send` wrappers and two context
managers per request (docs/performance.md).
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Callable, MutableMapping
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from devstack_client import Metrics
from devstack_client.asgi import (
    REQUEST_ID_HEADER,
    RequestMetrics,
    _request_id,
    request_id_of,
    with_header,
)
from devstack_client.redaction import redactor

_REQUEST_ID_HEADER = REQUEST_ID_HEADER.encode()
_GENERATED = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")

# Set by the server (`server.Admission`) on a request that waited before the app: the
# `time.perf_counter()` at which it arrived. Its duration and latency metric count the wait.
QUEUED_AT = "devstack.queued_at"

access_log = structlog.get_logger("devstack_web.access")
_access_stdlib = logging.getLogger("devstack_web.access")


class EdgeMiddleware:
    """The request id, the HTTP metrics and the access line of each request, in one layer."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope, _REQUEST_ID_HEADER)
        state: MutableMapping[str, Any] = scope.setdefault("state", {})
        state["request_id"] = request_id
        raw_id = request_id.encode()
        request = RequestMetrics(self.metrics, scope)
        queued_at = scope.get(QUEUED_AT)
        if queued_at is not None:
            request.started = queued_at

        async def receive_routed() -> Message:
            if request.in_flight is None:
                request.routed()
            return await receive()

        async def send_edge(message: Message) -> None:
            if message["type"] == "http.response.start":
                with_header(message, _REQUEST_ID_HEADER, raw_id)
                request.answered(int(message["status"]))
            await send(message)

        id_token = _request_id.set(request_id)
        log_tokens = structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await self.app(scope, receive_routed, send_edge)
        finally:
            elapsed = request.finish()
            if _access_stdlib.isEnabledFor(logging.INFO):
                _log_access(scope, request.method, request.status, elapsed)
            structlog.contextvars.reset_contextvars(**log_tokens)
            _request_id.reset(id_token)


_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _json_handlers() -> list[logging.StreamHandler[Any]]:
    """The root logger's stream handlers that render JSON through structlog (what
    `configure_logging` installs), or [] when any other handler is there too (a test's
    capture, a console renderer): then the line goes through logging like any other."""
    found: list[logging.StreamHandler[Any]] = []
    for handler in logging.getLogger().handlers:
        formatter = handler.formatter
        if not (
            isinstance(handler, logging.StreamHandler)
            and isinstance(formatter, structlog.stdlib.ProcessorFormatter)
            and formatter.processors
            and isinstance(formatter.processors[-1], structlog.processors.JSONRenderer)
        ):
            return []
        found.append(handler)
    return found


# The access line's JSON, as structlog's JSONRenderer(default=str) writes it, without building an
# encoder per line as json.dumps does when given `default`; a text alone, as json.dumps escapes it.
_encode_json = json.JSONEncoder(default=str).encode
_json_string: Callable[[str], str] = json.encoder.encode_basestring_ascii
_second: tuple[int, str] = (-1, "")  # (a second since the epoch, formatted)


def utc_timestamp() -> str:
    """Now, as structlog's `TimeStamper(fmt="iso", utc=True)` writes it
    (`2026-11-29T02:54:21.388051Z`, no fraction when it is 0). The date and time of the current
    second are formatted once a second: 0.4 microseconds a call instead of 1.0."""
    global _second
    microseconds = time.time_ns() // 1000
    second, fraction = divmod(microseconds, 1_000_000)
    formatted_second, whole = _second
    if second != formatted_second:
        whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _second = (second, whole)
    return f"{whole}.{fraction:06d}Z" if fraction else f"{whole}Z"


def _log_access(scope: Scope, method: str, status: int, elapsed: float) -> None:
    """The access line. Its fields, their order and the redaction are those of every other line
    (`configure_logging`), but it is rendered here (`_access_line`), not by structlog's
    processor chain and logging's record machinery: 360 against 40 microseconds a line,
    measured, on the hottest line of the app (docs/performance.md). Only what the caller chose
    (the path, the query, a method outside the usual ones, an inbound request id) can carry a
    secret: that is redacted."""
    handlers = _json_handlers()
    if not handlers:
        access_log.info("request", **_access_fields(scope, method, status, elapsed))
        return
    line = _access_line(scope, method, status, elapsed)
    for handler in handlers:
        handler.acquire()
        try:
            handler.stream.write(line)
            handler.flush()
        except Exception:  # as logging does: a failing log never fails the request
            handler.handleError(logging.makeLogRecord({"msg": "access line", "levelno": 20}))
        finally:
            handler.release()


def _access_fields(scope: Scope, method: str, status: int, elapsed: float) -> dict[str, Any]:
    """The line's own fields, redacted, in the order of the line, for logging's path (when a
    handler other than `configure_logging`'s is on the root logger); `_access_line` writes the
    same fields."""
    client = scope.get("client")
    query = scope.get("query_string") or b""
    fields: dict[str, Any] = {
        "method": method if method in _KNOWN_METHODS else redactor.redact_text(method),
        "path": redactor.redact_text(str(scope.get("path", ""))),
        "status": status,
        "duration_ms": round(elapsed * 1000, 3),
        "client": f"{client[0]}:{client[1]}" if client else None,
        "http_version": scope.get("http_version"),
    }
    if query:
        fields["query"] = redactor.redact_text(bytes(query).decode("latin-1"))
    return fields


# Set by the line itself: a context variable of the same name does not repeat them.
_LINE_KEYS = frozenset(
    {"method", "path", "status", "duration_ms", "client", "http_version", "query"}
    | {"event", "level", "logger", "timestamp"}
)


def _access_line(scope: Scope, method: str, status: int, elapsed: float) -> str:
    """`_access_fields`, then the event, the bound context variables (the request id), the
    level, the logger and the timestamp, as structlog's `JSONRenderer` writes them
    (`json.dumps`: its separators, its ASCII escaping, `str` for what JSON cannot hold). The text
    is joined from its parts, each value encoded on its own, instead of building the dict and
    encoding it: the whole line, written, took 7.3 microseconds, 4.7 now (docs/performance.md).
    A test holds the two equal, character for character, on awkward values."""
    client = scope.get("client")
    query = scope.get("query_string") or b""
    line = [
        '{"method": ',
        _json_string(method if method in _KNOWN_METHODS else redactor.redact_text(method)),
        ', "path": ',
        _json_string(redactor.redact_text(str(scope.get("path", "")))),
        ', "status": ',
        _encode_value(status),
        ', "duration_ms": ',
        repr(round(elapsed * 1000, 3)),
        ', "client": ',
        _json_string(f"{client[0]}:{client[1]}") if client else "null",
        ', "http_version": ',
        _encode_value(scope.get("http_version")),
    ]
    if query:
        line += [', "query": ', _json_string(redactor.redact_text(bytes(query).decode("latin-1")))]
    line.append(', "event": "request"')
    for key, value in structlog.contextvars.get_contextvars().items():
        if key not in _LINE_KEYS:
            if not (isinstance(value, str) and _GENERATED.fullmatch(value)):
                value = redactor.redact(value, key)
            line += [", ", _json_string(key), ": ", _encode_value(value)]
    line += [', "level": "info", "logger": "devstack_web.access", "timestamp": "']
    line += [utc_timestamp(), '"}\n']
    return "".join(line)


def _encode_value(value: Any) -> str:
    """`value` in JSON as `_encode_json` writes it. A text, an integer, a finite float and None
    (every field of the line) are written directly: `JSONEncoder.encode` builds an encoder for
    each value that is not a text."""
    kind = type(value)
    if kind is str:
        return _json_string(value)
    if kind is int or (kind is float and math.isfinite(value)):
        return repr(value)  # what json writes: int.__repr__, float.__repr__
    if value is None:
        return "null"
    return _encode_json(value)
