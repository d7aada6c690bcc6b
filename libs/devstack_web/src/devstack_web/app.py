"""`create_app`: a FastAPI application with everything both reference apps share.

- Swagger UI at `/docs` and ReDoc at `/redoc`, their assets served by the app (fastapi-offline).
- Lifespan: `configure_logging`, one `DevStackClient(ClientSettings())` on `app.state.stack`
  (closed on shutdown), and a Redis-backed rate limiter when `rate_limit` is set.
- Middleware, outermost first: the edge (request id, metrics by route template and the one
  access line per request, `edge.py`), CORS (when origins are configured), the guard (rate
  limit on `/examples/**`, then body size 413, media type 415, JSON syntax 400), HEAD answered
  as GET without the body, a last-resort 500 problem.
- Handlers: the library's exceptions and validation errors as problem documents (`handlers`).
- The OpenAPI document: every operation takes the optional `X-Request-ID` header and declares it
  on every response; problem responses are `application/problem+json`; FastAPI's own 422
  ("HTTPValidationError") is dropped, so only the 422s a route declares remain.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.routing import APIRoute
from fastapi_offline import FastAPIOffline
from starlette._utils import get_route_path  # as fastapi.routing imports it
from starlette.routing import Match
from starlette.types import Scope

from devstack_client import (
    ClientSettings,
    DevStackClient,
    Metrics,
    RedisRateLimiter,
    configure_logging,
)
from devstack_client.asgi import REQUEST_ID_PATTERN
from devstack_web.edge import EdgeMiddleware
from devstack_web.handlers import install_handlers
from devstack_web.middleware import CatchAllMiddleware, GuardMiddleware, HeadMiddleware
from devstack_web.problems import PROBLEM_SCHEMA_REF, problem_schemas
from devstack_web.settings import WebSettings

log = structlog.get_logger("devstack_web")

CONTRACT_TITLE = "DevStack Core reference API"
CONTRACT_VERSION = "1.0.0"
REQUEST_ID_HEADER_SPEC: dict[str, Any] = {
    "description": "The request's correlation id (the caller's when sane, else generated).",
    "required": True,
    "schema": {"type": "string", "pattern": REQUEST_ID_PATTERN},
}


# FastAPI's own OpenTelemetry (0.165 and later) asks the global tracer, meter and logger
# providers on every request whether any is configured; the apps export Prometheus metrics and
# JSON logs, not OpenTelemetry, so it is off (docs/performance.md). Pass `telemetry=` to
# create_app to turn it back on.
NO_TELEMETRY: dict[str, bool] = {
    "tracing": False,
    "metrics": False,
    "logs": False,
    "operation_spans": False,
}
_FASTAPI_TELEMETRY = "telemetry" in inspect.signature(FastAPI.__init__).parameters


async def get_stack(request: Request) -> DevStackClient:
    """The application's one DevStackClient (created in the lifespan).

    `async` on purpose: FastAPI runs a plain `def` dependency in anyio's thread pool, which would
    cost every request a thread hop and the process up to 40 worker threads (and their malloc
    arenas). Every dependency and route of the apps is a coroutine (a unit test checks)."""
    stack: DevStackClient = request.app.state.stack
    return stack


StackDep = Annotated[DevStackClient, Depends(get_stack)]


REQUEST_ID_DESCRIPTION = (
    "A correlation id, honoured when sane (1 to 128 characters of "
    "A-Z a-z 0-9 . _ : + / = -), otherwise replaced by a generated one."
)
# The optional X-Request-ID header, as every operation of the contract declares it.
REQUEST_ID_PARAMETER: dict[str, Any] = {
    "name": "X-Request-ID",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "description": REQUEST_ID_DESCRIPTION, "title": "X-Request-Id"},
    "description": REQUEST_ID_DESCRIPTION,
}


# `Match.NONE`, read once: Python 3.11 takes 0.2 microseconds to read an Enum member from its class
# (measured here), which was a sixth of a turned-away try (ContractRoute.matches).
_NO_MATCH = Match.NONE


class ContractRoute(APIRoute):
    """An APIRoute that turns a path away with one string comparison when it cannot be the
    route's.

    Starlette tries a request on each route in turn until one matches, and a try costs FastAPI's
    and Starlette's `matches` (scope look-ups and the route's regular expression): the contract's
    cache GET came after 27 tries, about 7 % of the samples in a profile of it
    (docs/performance.md). A path that does not begin with the route's literal prefix, its
    template up to the first parameter, cannot match the expression, so the answer is the same
    either way, and a try that stops there costs half as much.

    `create_app` sets `prefix_router` when it puts the route in the app's own router, and the
    check applies only to requests that router routes (`scope["router"]`): the same route included
    in another app (`include_router`, under a prefix of its own) is matched as FastAPI matches
    any route."""

    prefix_router: object = None  # the router whose requests the prefix is checked for

    @functools.cached_property
    def literal_prefix(self) -> str:
        """The route's template up to its first parameter."""
        return self.path.split("{", 1)[0]

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        """No match when the path lacks the literal prefix, else as APIRoute decides."""
        router = self.prefix_router
        if (
            router is not None
            and scope.get("router") is router
            and scope["type"] == "http"
            and not get_route_path(scope).startswith(self.literal_prefix)
        ):
            return _NO_MATCH, {}
        return super().matches(scope)


class ContractRouter(APIRouter):
    """An APIRouter whose every route declares the X-Request-ID header in the OpenAPI document.

    The header is read by EdgeMiddleware, so a route only documents it. Declared as a header
    parameter (a dependency), FastAPI would solve and validate it on every request for nothing:
    a quarter of the app layer's CPU on `/health` (docs/performance.md). Its routes are
    ContractRoutes."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("route_class", ContractRoute)
        super().__init__(**kwargs)

    def add_api_route(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        """Add the route, its operation declaring the header after its own parameters."""
        extra = dict(kwargs.pop("openapi_extra", None) or {})
        extra["parameters"] = [*extra.get("parameters", []), dict(REQUEST_ID_PARAMETER)]
        super().add_api_route(path, endpoint, openapi_extra=extra, **kwargs)


def declares_request_id(route: APIRoute) -> bool:
    """Whether the route's operation declares the X-Request-ID header (made by ContractRouter)."""
    return REQUEST_ID_PARAMETER in (route.openapi_extra or {}).get("parameters", [])


def contract_router(**kwargs: Any) -> APIRouter:
    """An APIRouter for contract routes (`kwargs` as for APIRouter): each of its routes declares
    the X-Request-ID header. create_app takes the routes of such routers as they are."""
    return ContractRouter(**kwargs)


ClientFactory = Callable[[Metrics], DevStackClient]


def default_client(metrics: Metrics) -> DevStackClient:
    """The client an app runs with: settings from DEVSTACK_* variables, the app's metrics."""
    return DevStackClient(ClientSettings(), metrics=metrics)


def create_app(
    implementation: str,
    routers: Sequence[APIRouter] = (),
    *,
    settings: WebSettings | None = None,
    client_factory: ClientFactory = default_client,
    title: str = CONTRACT_TITLE,
    version: str = CONTRACT_VERSION,
    schema_descriptions: Mapping[str, str] | None = None,
    **fastapi_kwargs: Any,
) -> FastAPI:
    """The app: the routes of `routers` (made by contract_router), plus the shared machinery
    above.

    `client_factory(metrics)` makes the DevStackClient at startup, sharing the app's Metrics
    (`app.state.metrics`); tests give a fake one, or set `app.state.stack` themselves and skip
    the lifespan. `schema_descriptions` (by component name) replace the models' own in the
    OpenAPI document."""
    web = settings if settings is not None else WebSettings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        """Start the client (and the rate limiter) for the app's life; close it after."""
        configure_logging(web.log_level)
        client = client_factory(metrics)
        await client.start()
        app.state.stack = client
        if web.rate_limit > 0:
            app.state.rate_limiter = RedisRateLimiter(
                client.redis, limit=web.rate_limit, window_seconds=web.rate_window_seconds
            )
        log.info("app started", implementation=implementation)
        try:
            yield
        finally:
            app.state.rate_limiter = None
            await client.aclose()
            log.info("app stopped", implementation=implementation)

    if _FASTAPI_TELEMETRY:
        fastapi_kwargs.setdefault("telemetry", NO_TELEMETRY)
    app = FastAPIOffline(title=title, version=version, lifespan=lifespan, **fastapi_kwargs)
    app.state.implementation = implementation
    app.state.metrics = metrics
    app.state.web_settings = web
    app.state.rate_limiter = None
    # The routes join the app's own router as they are. include_router would have FastAPI build
    # each of them again for the app (its parameters' and responses' validators and serializers:
    # about 1 MB for the contract's 32 routes, measured in docs/apps.md). They go before
    # FastAPI's own (the OpenAPI document, /docs, /redoc and their assets), which nearly no
    # request is for: a request tries the routes in order (ContractRoute).
    contract_routes = []
    for router in routers:
        for route in router.routes:
            if isinstance(route, APIRoute) and not declares_request_id(route):
                raise ValueError(f"{route.path}: its router was not made by contract_router()")
            if isinstance(route, ContractRoute):
                route.prefix_router = app.router
            contract_routes.append(route)
    app.router.routes[:0] = contract_routes
    install_handlers(app)

    # add_middleware puts each one outside the previous: this reads innermost first.
    app.add_middleware(CatchAllMiddleware)
    app.add_middleware(HeadMiddleware)
    app.add_middleware(GuardMiddleware, fastapi_app=app, body_limit=web.body_limit)
    if web.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=web.cors_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Content-Type", "X-Request-ID"],
            expose_headers=[
                "X-Request-ID",
                "Location",
                "Retry-After",
                "RateLimit",
                "RateLimit-Policy",
            ],
            max_age=600,
        )
    app.add_middleware(EdgeMiddleware, metrics=metrics)

    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = shape_openapi(generate(), schema_descriptions)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


# -- the OpenAPI document ----------------------------------------------------------------------


def _operations(schema: dict[str, Any]) -> Iterable[dict[str, Any]]:
    for item in schema.get("paths", {}).values():
        for method, operation in item.items():
            if method in ("get", "put", "post", "delete", "patch", "head", "options"):
                yield operation


def shape_openapi(
    schema: dict[str, Any], schema_descriptions: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The generated document as the contract has it (request-id header, problem schemas, no FastAPI
    422)."""
    for operation in _operations(schema):
        responses: dict[str, Any] = operation.get("responses", {})
        fastapi_422 = responses.get("422", {}).get("content", {}).get("application/json", {})
        if fastapi_422.get("schema", {}).get("$ref", "").endswith("/HTTPValidationError"):
            del responses["422"]
        for response in responses.values():
            response.setdefault("headers", {})
            response["headers"] = {"X-Request-ID": REQUEST_ID_HEADER_SPEC, **response["headers"]}
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    if PROBLEM_SCHEMA_REF in str(schema.get("paths", {})):
        for name, definition in problem_schemas().items():
            components.setdefault(name, definition)
    for name, description in (schema_descriptions or {}).items():
        if name in components:
            components[name]["description"] = description
    if "/HTTPValidationError'" not in str(schema.get("paths", {})):
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
    return schema
