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

import re
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from contextvars import ContextVar
from typing import Any

import structlog

from devstack_client.metrics import Metrics

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

REQUEST_ID_HEADER = "x-request-id"
UNMATCHED = "<unmatched>"
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:+/=\-]{1,128}$")

_request_id: ContextVar[str | None] = ContextVar("devstack_request_id", default=None)


def current_request_id() -> str | None:
    """The id of the request being served in this context, if any."""
    return _request_id.get()


def sane_request_id(value: str | None) -> str | None:
    return value if value is not None and _SANE_REQUEST_ID.fullmatch(value) else None


def new_request_id() -> str:
    return str(uuid.uuid4())


def _header(scope: Scope, name: str) -> str | None:
    wanted = name.encode()
    for key, value in scope.get("headers") or ():
        if key.lower() == wanted:
            try:
                decoded: str = value.decode("ascii")
            except UnicodeDecodeError:
                return None
            return decoded
    return None


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp, *, header: str = REQUEST_ID_HEADER) -> None:
        self.app = app
        self.header = header.lower()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = sane_request_id(_header(scope, self.header)) or new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        raw_header = self.header.encode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != raw_header]
                headers.append((raw_header, request_id.encode()))
                message["headers"] = headers
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


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = str(scope.get("method", "GET"))
        started = time.perf_counter()
        status = 500
        in_flight: str | None = None

        def enter(force: bool) -> None:
            nonlocal in_flight
            if in_flight is None:
                route = route_template(scope)
                if route is not None or force:
                    in_flight = route or UNMATCHED
                    self.metrics.http_in_flight.labels(method, in_flight).inc()

        async def receive_routed() -> Message:
            enter(False)
            return await receive()

        async def send_routed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                enter(True)
            await send(message)

        try:
            await self.app(scope, receive_routed, send_routed)
        finally:
            route = route_template(scope) or UNMATCHED
            if in_flight is not None:
                self.metrics.http_in_flight.labels(method, in_flight).dec()
            self.metrics.http_requests.labels(method, route, str(status)).inc()
            self.metrics.http_duration.labels(method, route).observe(time.perf_counter() - started)


def metrics_endpoint(metrics: Metrics) -> ASGIApp:
    """A tiny ASGI app answering the Prometheus exposition text (mount it at /metrics)."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
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
