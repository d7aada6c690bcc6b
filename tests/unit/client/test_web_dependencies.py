"""No request of either app goes through anyio's thread pool.

FastAPI runs a plain `def` route or dependency in a worker thread: a thread hop per request and
up to 40 threads, each with its own malloc arena. Every route and dependency must be async."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from devstack_web import get_stack


def _apps() -> list[tuple[str, FastAPI]]:
    from api_first.app import create_app as api_first
    from code_first.app import create_app as code_first

    return [("code_first", code_first()), ("api_first", api_first())]


def _calls(dependant: Any) -> Iterator[Any]:
    if dependant.call is not None:
        yield dependant.call
    for sub in dependant.dependencies:
        yield from _calls(sub)


def test_get_stack_is_a_coroutine_function() -> None:
    assert inspect.iscoroutinefunction(get_stack)


@pytest.mark.parametrize(("name", "app"), _apps(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_route_and_dependency_is_async(name: str, app: FastAPI) -> None:
    routes = [r for r in app.routes if isinstance(r, APIRoute)]
    assert routes
    sync = sorted(
        {
            f"{route.path}: {getattr(call, '__qualname__', call)}"
            for route in routes
            for call in _calls(route.dependant)
            if not inspect.iscoroutinefunction(call)
        }
    )
    assert not sync, f"{name} runs these in the thread pool: {sync}"
