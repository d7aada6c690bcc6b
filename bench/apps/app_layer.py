"""What the application layer alone costs per request: the apps against bare Starlette and plain
FastAPI, called in process, with no server, no network and a stand-in client.

    .venv/bin/python -OO bench/apps/app_layer.py [--requests 10000] [--rounds 5] [--json out.json]

`./devstack bench` compares the servers as a client sees them, so every figure there includes
uvicorn, the sockets and the library's round trip to Redis, shared by the app and its baseline.
This takes them out: each app is called as an ASGI application (`app(scope, receive, send)`) on
`GET /health` and `GET /examples/cache/{key}`, and the cache answers at once from memory. What
is left is the framework, the routes and the middleware: the part of the gap to the baselines an
app can change. Nothing to start: no stack, no ports.

Variants, each built in this process:
- `starlette`: the bench's baseline routes (`bench/baselines/starlette_app.py`), the same
  handlers as there, on the stand-in client;
- `fastapi`: plain FastAPI, the same two routes written as FastAPI teaches (the return type as
  the response model, the client from a dependency), no middleware;
- `code_first, no middleware`: code_first without the four layers `devstack_web.create_app`
  adds (edge, guard, HEAD, last-resort 500);
- `code_first` and `api_first`: as the stack runs them, the access line rendered and written
  (to /dev/null: one write a request, as to the log file).

CPU seconds (`time.process_time`) per request over `--requests` requests, after a warm-up, in
`--rounds` rounds taking turns; the median round is printed (and every round in the JSON), with
each variant's ratio to `starlette`. On a shared machine compare figures from one run only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Request
from pydantic import BaseModel

from devstack_client import Metrics, configure_logging
from devstack_client.models import CacheEntry

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "baselines"))
from starlette_app import library_app

PATHS = {"health": "/health", "cache_get": "/examples/cache/bench-key"}
ASGIApp = Callable[..., Any]


class StandInCache:
    """The library's cache use case, answering from memory."""

    async def get(self, key: str) -> CacheEntry:
        return CacheEntry(key=key, value="a cached value", ttl_seconds=None)


class StandInClient:
    """What the routes measured here use of `DevStackClient`."""

    def __init__(self) -> None:
        self.cache = StandInCache()
        self.metrics = Metrics()


class Liveness(BaseModel):
    status: Literal["healthy"]


async def get_client(request: Request) -> StandInClient:
    """The app's client, as the apps' `get_stack` gives theirs."""
    client: StandInClient = request.app.state.client
    return client


ClientDep = Annotated[StandInClient, Depends(get_client)]


def plain_fastapi(client: StandInClient) -> FastAPI:
    app = FastAPI()
    app.state.client = client

    @app.get("/health")
    async def health() -> Liveness:
        return Liveness(status="healthy")

    @app.get("/examples/cache/{key}")
    async def cache_get(key: str, stack: ClientDep) -> CacheEntry:
        return await stack.cache.get(key)

    return app


def reference_app(name: str, client: StandInClient, *, middleware: bool = True) -> FastAPI:
    if name == "code_first":
        from code_first.app import create_app
    else:
        from api_first.app import create_app
    app = create_app()
    if not middleware:
        app.user_middleware = []
    app.state.stack = client  # no lifespan: the stand-in is the app's client
    return app


def variants() -> dict[str, ASGIApp]:
    client = StandInClient()
    return {
        "starlette": library_app("redis", client=client),  # its /health is the bare app's
        "fastapi": plain_fastapi(client),
        "code_first, no middleware": reference_app("code_first", client, middleware=False),
        "code_first": reference_app("code_first", client),
        "api_first": reference_app("api_first", client),
    }


def scope_for(path: str) -> dict[str, Any]:
    """An HTTP/1.1 GET as uvicorn hands it to the app."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"app_layer")],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


async def cpu_per_request(app: ASGIApp, path: str, requests: int) -> float:
    """CPU microseconds per request over `requests` calls, each answered 200."""
    request = {"type": "http.request", "body": b"", "more_body": False}
    statuses: set[int] = set()

    async def receive() -> dict[str, Any]:
        return request

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.add(message["status"])

    for _ in range(min(requests, 500)):  # warm-up
        await app(scope_for(path), receive, send)
    started = time.process_time()
    for _ in range(requests):
        await app(scope_for(path), receive, send)
    elapsed = time.process_time() - started
    if statuses != {200}:
        raise SystemExit(f"{path} answered {sorted(statuses)}, not only 200")
    return elapsed / requests * 1e6


async def measure(requests: int, rounds: int) -> dict[str, dict[str, list[float]]]:
    apps = variants()
    results: dict[str, dict[str, list[float]]] = {
        name: {scenario: [] for scenario in PATHS} for name in apps
    }
    for _ in range(rounds):
        for scenario, path in PATHS.items():
            for name, app in apps.items():
                results[name][scenario].append(await cpu_per_request(app, path, requests))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description="the application layer's CPU per request")
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path, help="write every round here")
    args = parser.parse_args()
    with open(os.devnull, "w") as devnull:
        configure_logging("INFO", stream=devnull)
        results = asyncio.run(measure(args.requests, args.rounds))
    medians = {
        name: {scenario: statistics.median(rounds) for scenario, rounds in by.items()}
        for name, by in results.items()
    }
    floor = medians["starlette"]
    print(f"{'CPU per request, microseconds':30} {'/health':>18} {'cache GET':>18}")
    for name, by in medians.items():
        cells = [f"{by[s]:8.1f} ({floor[s] / by[s]:4.2f}x)" for s in PATHS]
        print(f"{name:30} {cells[0]:>18} {cells[1]:>18}")
    print(
        f"median of {args.rounds} rounds of {args.requests} requests;"
        " (x): starlette's / the variant's"
    )
    if args.json:
        args.json.write_text(json.dumps({"medians": medians, "rounds": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
