"""Pure ASGI middleware (no framework needed): request ids and HTTP metrics by route template.

- `RequestIdMiddleware`: honours a sane inbound `X-Request-ID` (1-128 of letters, digits and
  `._:+/=-`), else generates one (a lowercase UUID v4); binds it to structlog's context for
  the request, puts it in `scope["state"]["request_id"]`, and returns it in the response.
- `MetricsMiddleware`: request count, latency and in-flight requests labelled by the route
  *template* (`/items/{item_id}`), taken from the scope once the framework has routed the request
  (Starlette and FastAPI set `scope["route"]`; any framework may set `scope["route_template"]`).
  A request that matched no route is labelled `<unmatched>`: raw paths never become labels.
"""

from __future__ import annotations

import os
import re
import threading
import time
from contextvars import ContextVar
from typing import TYPE_CHECKING

import structlog

from devstack_client.metrics import Metrics

if TYPE_CHECKING:  # the ASGI types, as Starlette spells them (no runtime dependency on it)
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = "x-request-id"
# A sane inbound X-Request-ID, the contract's pattern (openapi/devstack.yaml): the one copy.
REQUEST_ID_PATTERN = r"^[A-Za-z0-9._:+/=-]{1,128}$"
UNMATCHED = "<unmatched>"
_SANE_REQUEST_ID = re.compile(REQUEST_ID_PATTERN)

_request_id: ContextVar[str | None] = ContextVar("devstack_request_id", default=None)


def current_request_id() -> str | None:
    """The id of the request being served in this context, if any."""
    return _request_id.get()


def sane_request_id(value: str | None) -> str | None:
    """`value` when it matches REQUEST_ID_PATTERN, else None."""
    return value if value is not None and _SANE_REQUEST_ID.fullmatch(value) else None


class _RequestIds:
    """Lowercase UUID v4 strings, as `str(uuid.uuid4())` writes them, from the same source
    (`os.urandom`), read 4 KiB at a time: 256 ids per system call instead of one each, and no
    `UUID` object per id. A request id is made for most requests, and `uuid4` was 1.8
    microseconds of one (docs/performance.md). A child process starts a fresh batch: a forked
    worker never repeats its parent's ids."""

    BATCH = 4096  # bytes: 256 ids

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._batch = b""
        self._offset = self.BATCH
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._lock = threading.Lock()
        self._batch, self._offset = b"", self.BATCH

    def __call__(self) -> str:
        with self._lock:
            offset = self._offset
            if offset >= self.BATCH:
                self._batch, offset = os.urandom(self.BATCH), 0
            self._offset = offset + 16
            batch = self._batch
        # 122 random bits; the version (4) and the variant (RFC 9562: 10) set as uuid4 does.
        value = int.from_bytes(batch[offset : offset + 16]) & _UUID4_CLEAR | _UUID4_SET
        h = f"{value:032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)

new_request_id = _RequestIds()
"""A generated request id: a lowercase UUID v4 (`new_request_id()`)."""


def header(scope: Scope, name: bytes) -> str | None:
    """The first value of the request header `name` (lowercase bytes), as latin-1 text (what
    HTTP allows in a field value), or None when absent."""
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def request_id_of(scope: Scope, name: bytes = REQUEST_ID_HEADER.encode()) -> str:
    """The request's id: its sane inbound header, else a new one."""
    return sane_request_id(header(scope, name)) or new_request_id()


def with_header(message: Message, name: bytes, value: bytes) -> None:
    """Set header `name` (lowercase) of a response start message, replacing any value of it."""
    headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != name]
    headers.append((name, value))
    message["headers"] = headers


class RequestIdMiddleware:
    """Honours a sane inbound request id or generates one; binds it for the request (structlog,
    `current_request_id()`, `scope["state"]`) and returns it on the response."""

    def __init__(self, app: ASGIApp, *, header: str = REQUEST_ID_HEADER) -> None:
        self.app = app
        self.header = header.lower()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw_header = self.header.encode()
        request_id = request_id_of(scope, raw_header)
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                with_header(message, raw_header, request_id.encode())
            await send(message)

        token = _request_id.set(request_id)
        try:
            with structlog.contextvars.bound_contextvars(request_id=request_id):
                await self.app(scope, receive, send_with_id)
        finally:
            _request_id.reset(token)


def route_template(scope: Scope) -> str | None:
    """The template of the route that matched, if the framework has said so yet."""
    explicit = scope.get("route_template")
    if isinstance(explicit, str):
        return explicit
    route = scope.get("route")
    for attribute in ("path_format", "path"):
        value = getattr(route, attribute, None)
        if isinstance(value, str):
            return str(scope.get("root_path", "") or "") + value if value else None
    return None


class RequestMetrics:
    """One request's HTTP metrics: in flight from when its route is known (or its answer
    starts), then counted and timed by route template when it ends (`finish`)."""

    __slots__ = ("in_flight", "method", "metrics", "scope", "started", "status")

    def __init__(self, metrics: Metrics, scope: Scope) -> None:
        self.metrics = metrics
        self.scope = scope
        self.method = str(scope.get("method", "GET"))
        self.started = time.perf_counter()
        self.status = 500
        self.in_flight: str | None = None

    def routed(self, *, force: bool = False) -> None:
        """Count the request in flight once its route is known (`force`: known or not)."""
        if self.in_flight is None:
            route = route_template(self.scope)
            if route is not None or force:
                self.in_flight = route or UNMATCHED
                metrics = self.metrics
                metrics.child(metrics.http_in_flight, self.method, self.in_flight).inc()

    def answered(self, status: int) -> None:
        """The response starts with `status`."""
        self.status = status
        self.routed(force=True)

    def finish(self) -> float:
        """Record the request; returns its duration in seconds."""
        elapsed = time.perf_counter() - self.started
        route = route_template(self.scope) or UNMATCHED
        metrics, method = self.metrics, self.method
        if self.in_flight is not None:
            metrics.child(metrics.http_in_flight, method, self.in_flight).dec()
        metrics.child(metrics.http_requests, method, route, str(self.status)).inc()
        metrics.child(metrics.http_duration, method, route).observe(elapsed)
        return elapsed


class MetricsMiddleware:
    """Request count, latency and in-flight requests by route template (`RequestMetrics`)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = RequestMetrics(self.metrics, scope)

        async def receive_routed() -> Message:
            request.routed()
            return await receive()

        async def send_routed(message: Message) -> None:
            if message["type"] == "http.response.start":
                request.answered(int(message["status"]))
            await send(message)

        try:
            await self.app(scope, receive_routed, send_routed)
        finally:
            request.finish()


def metrics_endpoint(metrics: Metrics) -> ASGIApp:
    """A tiny ASGI app answering the Prometheus exposition text (mount it at /metrics)."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        """Answer the exposition text."""
        body, content_type = metrics.render()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", content_type.encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app
