"""The web tests' sample app: a devstack_web app with a few routes of its own (one per kind of
answer the shared machinery shapes) and a fake DevStackClient, so no server is needed. The
fixtures that serve it are in conftest.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field

from devstack_client import (
    DependencyTimeout,
    DependencyUnavailable,
    DevStackError,
    InvalidInput,
    Metrics,
    NotFound,
    RateLimitDecision,
)
from devstack_web import StackDep, WebSettings, contract_router, create_app


class FakeStack:
    """Just enough of DevStackClient for the shared machinery."""

    def __init__(self) -> None:
        self.metrics = Metrics()
        self.calls: list[str] = []


class Thing(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=5)
    count: int = 0


router = contract_router()


@router.get("/examples/ok")
async def ok(stack: StackDep) -> dict[str, str]:
    cast(FakeStack, stack).calls.append("ok")  # the app's stack is the fake (make_app)
    return {"status": "ok"}


@router.post("/examples/things", status_code=201)
async def create_thing(thing: Thing) -> Thing:
    return thing


@router.get("/examples/things/{thing_id}")
async def get_thing(thing_id: str, limit: int = 5) -> dict[str, Any]:
    return {"id": thing_id, "limit": limit}


@router.delete("/examples/things/{thing_id}", status_code=204)
async def delete_thing(thing_id: str) -> None:  # noqa: ARG001 (the route binds it by name)
    return None


RAISES: dict[str, Exception] = {
    "missing": NotFound("no postgres item has this id"),
    "down": DependencyUnavailable("postgres", "connect: password=hunter2 refused", retry_after=0),
    "slow": DependencyTimeout("redis", "cache get timed out after 5s"),
    "invalid": InvalidInput("ttl_seconds must be between 1 and 86400"),
    "config": DevStackError("internal detail: /etc/secret"),
    "bug": RuntimeError("boom: token s.abcdef"),
}


@router.get("/examples/raise/{what}")
async def raise_it(what: str) -> None:
    raise RAISES[what]


@router.get("/health")
async def liveness() -> dict[str, str]:
    return {"status": "healthy"}


@dataclass
class FakeLimiter:
    limit: int = 2
    window_seconds: int = 60
    reset: int = 30
    counts: dict[str, int] = field(default_factory=dict)
    fail: bool = False

    async def hit(self, client: str) -> RateLimitDecision:
        if self.fail:
            raise DependencyUnavailable("redis", "down")
        self.counts[client] = self.counts.get(client, 0) + 1
        n = self.counts[client]
        return RateLimitDecision(
            allowed=n <= self.limit,
            limit=self.limit,
            window_seconds=self.window_seconds,
            remaining=max(0, self.limit - n),
            reset_seconds=self.reset,
        )


def make_app(**settings: Any) -> FastAPI:
    app = create_app(
        implementation="code_first", routers=[router], settings=WebSettings(**settings)
    )
    app.state.stack = FakeStack()
    return app
