"""Pure ASGI middleware: request checks, and a last-resort error answer.

`GuardMiddleware`, for each HTTP request:
1. on `/examples/**`, when a limiter is configured (`app.state.rate_limiter`), counts the
   request: over the quota is 429 with Retry-After, RateLimit and RateLimit-Policy; under it,
   the response carries RateLimit and RateLimit-Policy. A limiter that cannot reach Redis lets
   the request through (logged): the rate limit never turns a Redis outage into errors;
2. on a POST, PUT or PATCH, gates the body: when the route reads it (so an unknown path stays
   404 and a wrong method 405, whatever the body), it is checked in the contract's order: size
   (413, from Content-Length without reading, else while reading), media type (415), nesting
   deeper than 64 levels (422, on the text), JSON syntax including an empty body (400), values
   nothing downstream can carry: lone surrogates, numbers out of a double's range (422, see
   devstack_client.jsonrules). The schema (422) is FastAPI's, after this. A refusal
   is raised as `BodyRejected` (an HTTPException, which FastAPI lets through unchanged) and
   answered by the handlers as a problem document.

`HeadMiddleware` answers HEAD as GET without the body.

`CatchAllMiddleware` turns an exception no handler took into a generic 500 problem document,
inside the request-id middleware (so the answer carries the id) and without the exception text.
"""

from __future__ import annotations

import json
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from devstack_client import DevStackError, RateLimiter
from devstack_client.asgi import header
from devstack_client.jsonrules import MAX_DEPTH, TOO_DEEP, first_violation, nesting_depth
from devstack_web.handlers import BAD_JSON_DETAIL, GENERIC_DETAIL, INVALID_DETAIL, BodyRejected
from devstack_web.problems import PROBLEM_MEDIA_TYPE, FieldError, problem_body

log = structlog.get_logger("devstack_web")

RATE_LIMITED_PREFIX = "/examples/"
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
WRONG_MEDIA_TYPE = "The request body must be application/json."
EMPTY_BODY = "The request body is empty; send a JSON object."


async def send_problem(
    send: Send,
    status: int,
    detail: str,
    scope: Scope,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """Answer a problem document from middleware (no route ran)."""
    body = json.dumps(
        problem_body(status, detail, str(scope.get("path", "/"))), separators=(",", ":")
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def is_json_media_type(content_type: str | None) -> bool:
    """`application/json`, with or without parameters (a charset); case-insensitive."""
    if not content_type:
        return False
    return content_type.split(";", 1)[0].strip().lower() == "application/json"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_NOT_JSON = object()


def parse_json(body: bytes) -> Any:
    """The body's JSON value, or `_NOT_JSON` (NaN and Infinity are not JSON)."""
    try:
        return json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError included
        return _NOT_JSON


def _unusable(pointer: str, detail: str) -> BodyRejected:
    return BodyRejected(
        422, INVALID_DETAIL, errors=[FieldError(location="body", field=pointer, detail=detail)]
    )


class BodyGate:
    """A `receive` that checks the whole body the first time the route asks for it."""

    def __init__(self, scope: Scope, receive: Receive, limit: int) -> None:
        self.scope = scope
        self.receive = receive
        self.limit = limit
        self.done = False

    async def __call__(self) -> Message:
        if self.done:
            return await self.receive()
        self.done = True
        too_large = f"The request body is larger than {self.limit} bytes."
        json_type = is_json_media_type(header(self.scope, b"content-type"))
        declared = (header(self.scope, b"content-length") or "").strip()
        if declared.isdigit():
            if int(declared) > self.limit:
                raise BodyRejected(413, too_large)
            if not json_type:
                raise BodyRejected(415, WRONG_MEDIA_TYPE)
        body = await self._read(too_large)
        if not json_type:
            raise BodyRejected(415, WRONG_MEDIA_TYPE)
        if not body.strip():
            raise BodyRejected(400, EMPTY_BODY)
        # Nesting is checked on the text, before parsing: a deep body must not reach a
        # recursive parser. Then syntax (400), then the values JSON allows and nothing after
        # it can carry (devstack_client.jsonrules): 422, before the schema's 422.
        if nesting_depth(body) > MAX_DEPTH:
            raise _unusable("", TOO_DEEP)
        value = parse_json(body)
        if value is _NOT_JSON:
            raise BodyRejected(400, BAD_JSON_DETAIL)
        found = first_violation(value)
        if found is not None:
            raise _unusable(*found)
        return {"type": "http.request", "body": body, "more_body": False}

    async def _read(self, too_large: str) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                break
            chunk = bytes(message.get("body", b""))
            size += len(chunk)
            if size > self.limit:
                raise BodyRejected(413, too_large)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


class GuardMiddleware:
    """The rate limit, then the body checks, in the contract's order (see the module)."""

    def __init__(self, app: ASGIApp, *, fastapi_app: Any, body_limit: int) -> None:
        self.app = app
        self.fastapi_app = fastapi_app
        self.body_limit = body_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        limiter: RateLimiter | None = getattr(self.fastapi_app.state, "rate_limiter", None)
        if limiter is not None and path.startswith(RATE_LIMITED_PREFIX):
            counted = await self._rate_limit(limiter, scope, send)
            if counted is None:
                return
            send = counted
        if scope.get("method") in BODY_METHODS:
            receive = BodyGate(scope, receive, self.body_limit)
        await self.app(scope, receive, send)

    async def _rate_limit(self, limiter: RateLimiter, scope: Scope, send: Send) -> Send | None:
        client = scope.get("client")
        address = str(client[0]) if client else "unknown"
        try:
            decision = await limiter.hit(address)
        except DevStackError as exc:
            log.warning("rate limit not checked: the limiter failed", error=str(exc))
            return send
        policy = f'"default";q={decision.limit};w={decision.window_seconds}'.encode()
        if not decision.allowed:
            reset = str(decision.reset_seconds).encode()
            await send_problem(
                send,
                429,
                f"Rate limit exceeded; retry after {decision.reset_seconds} seconds.",
                scope,
                [
                    (b"retry-after", reset),
                    (b"ratelimit", b'"default";r=0;t=' + reset),
                    (b"ratelimit-policy", policy),
                ],
            )
            return None
        left = f'"default";r={decision.remaining};t={decision.reset_seconds}'.encode()

        async def send_with_quota(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", ()),
                    (b"ratelimit", left),
                    (b"ratelimit-policy", policy),
                ]
            await send(message)

        return send_with_quota


class HeadMiddleware:
    """HEAD is GET without the body (RFC 9110 9.3.2), on every GET route: the route runs as for
    GET, and the answer keeps its status and headers (Content-Length included) but sends no
    body. FastAPI registers GET routes for GET only, so HEAD was 405 before."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, send_without_body)


class CatchAllMiddleware:
    """An exception no handler took, as a generic 500 problem document."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            log.error("unhandled error", path=scope.get("path"), exc_info=exc)
            if started:
                raise
            await send_problem(send, 500, GENERIC_DETAIL, scope)
