"""The benchmark's floor-finding baselines, started by `devstack bench` beside the stack's APIs.

    python -OO bench/baselines/starlette_app.py --mode bare|redis|postgres --port PORT \
        --loop asyncio|uvloop

`bare`: a Starlette app whose one route, `GET /health`, answers `{"status": "ok"}`: what the
framework and the server (uvicorn with the APIs' server settings: httptools, which
`uvicorn.run` picks when the environment has it, and the event loop the bench saw the API
run on) cost alone.

`redis`: the same, plus `GET /examples/cache/{key}` answering exactly as the APIs do (the entry
as JSON, 404 when missing), through the same library call the APIs make
(`DevStackClient.cache.get`: AppRole login, the Redis Cluster pool over TLS, one EVAL on the
key's master). The difference between it and an API on the same route is what the API adds
(FastAPI, middleware, logging, metrics); the difference between it and `bare` is the library
and Redis.

`postgres`: the same for `GET /examples/postgres/items/{item_id}`
(`DevStackClient.items("postgres").get`: asyncpg's pool over TLS, one SELECT by primary key),
answering the item as the APIs do, 404 when missing.

It reads the same DEVSTACK_* settings as the APIs (the bench gives it code_first's AppRole,
whose policy reads the Redis and PostgreSQL secrets). Run it with an API's own environment's
Python, so that the interpreter, its flags and the library's versions are the APIs'. No access
log (the APIs log every request: part of what the comparison shows).
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import AsyncIterator
from typing import Any, Literal

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def health(_: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


def bare_app() -> Starlette:
    return Starlette(routes=[Route("/health", health)])


def library_app(dependency: Literal["redis", "postgres"], client: Any = None) -> Starlette:
    """`/health`, and the one route of `dependency` (`redis` or `postgres`) through the library;
    `client`: a DevStackClient of the caller's, or a stand-in (bench/apps/app_layer.py), instead
    of the one made here from the DEVSTACK_* settings."""
    from devstack_client import ClientSettings, DevStackClient, tune_process
    from devstack_client.errors import NotFound

    if client is None:
        tune_process()  # the library's memory measures, as the APIs apply them in their main
        client = DevStackClient(ClientSettings(), dependencies=(dependency,))

    async def cache_get(request: Request) -> JSONResponse:
        try:
            entry = await client.cache.get(request.path_params["key"])
        except NotFound:
            return JSONResponse({"status": 404}, status_code=404)
        return JSONResponse(entry.model_dump(mode="json"))

    async def postgres_get(request: Request) -> JSONResponse:
        try:
            item = await client.items("postgres").get(request.path_params["item_id"])
        except NotFound:
            return JSONResponse({"status": 404}, status_code=404)
        return JSONResponse(item.model_dump(mode="json"))

    @contextlib.asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        async with client:
            yield

    route = (
        Route("/examples/cache/{key}", cache_get)
        if dependency == "redis"
        else Route("/examples/postgres/items/{item_id}", postgres_get)
    )
    return Starlette(routes=[Route("/health", health), route], lifespan=lifespan)


def main() -> None:
    parser = argparse.ArgumentParser(description="a benchmark baseline")
    parser.add_argument("--mode", choices=("bare", "redis", "postgres"), required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), required=True)
    args = parser.parse_args()
    app = bare_app() if args.mode == "bare" else library_app(args.mode)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        loop=args.loop,
        log_level="warning",
        access_log=False,
        server_header=False,
        lifespan="off" if args.mode == "bare" else "on",
    )


if __name__ == "__main__":
    main()
