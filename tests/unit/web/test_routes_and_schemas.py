"""How create_app composes routes and documents problems, kept cheap in memory and in CPU.

- The routes of the apps' routers are the app's routes, built once: FastAPI's include_router
  would build each again for the app (validators and serializers of every parameter and
  response), about 1 MB for the contract's routes.
- Problem responses refer to one `Problem` schema instead of declaring `model: Problem` on every
  error status of every route (FastAPI builds a validator and a serializer for each), and the
  document still carries `Problem` and `FieldError` exactly as FastAPI would generate them.
- The contract's routes are tried first, and each turns away a path without its literal prefix
  before running its regular expression (ContractRoute), with the answer FastAPI would give.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import Match

from code_first.app import create_app as create_code_first
from code_first.routes import ROUTERS
from devstack_web import WebSettings, contract_router, create_app, problem_responses
from devstack_web.app import ContractRoute
from devstack_web.problems import Problem


def test_the_routers_routes_are_the_apps_routes_built_once() -> None:
    app = create_code_first(settings=WebSettings())
    theirs = [route for router in ROUTERS for route in router.routes]
    ours = [r for r in app.routes if isinstance(r, APIRoute) and r.include_in_schema]
    assert len(ours) == len(theirs) == 32
    assert all(a is b for a, b in zip(ours, theirs, strict=True))


def test_every_route_still_declares_the_request_id_header() -> None:
    document = create_code_first(settings=WebSettings()).openapi()
    for path, item in document["paths"].items():
        for method, operation in item.items():
            names = [p["name"] for p in operation.get("parameters", []) if p["in"] == "header"]
            assert "X-Request-ID" in names, (method, path)


def test_no_route_parses_the_request_id_header_per_request() -> None:
    """The header is only documented (EdgeMiddleware reads it): as a header parameter FastAPI
    solved and validated it on every request, a quarter of `/health`'s app-layer CPU."""

    def headers(dependant: Dependant) -> list[str]:
        nested = [name for sub in dependant.dependencies for name in headers(sub)]
        return [f.alias for f in dependant.header_params] + nested

    app = create_code_first(settings=WebSettings())
    for route in app.routes:
        if isinstance(route, APIRoute):
            assert "X-Request-ID" not in headers(route.dependant), route.path


def test_a_router_not_made_by_contract_router_is_refused() -> None:
    plain = APIRouter()

    @plain.get("/examples/plain")
    async def handler() -> dict[str, str]:
        return {}

    with pytest.raises(ValueError, match="/examples/plain: its router was not made by"):
        create_app(implementation="test", routers=[plain], settings=WebSettings())


def _app_with_problem_route(responses: dict[int | str, dict[str, Any]]) -> dict[str, Any]:
    router = contract_router()

    @router.get("/examples/one", responses=responses)
    async def one() -> dict[str, str]:
        return {}

    return create_app(implementation="test", routers=[router], settings=WebSettings()).openapi()


def test_problem_responses_refer_to_the_schema_fastapi_would_have_generated() -> None:
    by_reference = _app_with_problem_route(problem_responses([404, 503]))
    by_model = _app_with_problem_route({404: {"model": Problem}})
    schemas = by_reference["components"]["schemas"]
    for name in ("Problem", "FieldError"):
        assert schemas[name] == by_model["components"]["schemas"][name]
    for status in ("404", "503"):
        content = by_reference["paths"]["/examples/one"]["get"]["responses"][status]["content"]
        assert content == {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        }


def test_no_problem_schema_without_a_problem_response() -> None:
    schemas = _app_with_problem_route({}).get("components", {}).get("schemas", {})
    assert "Problem" not in schemas


def _paths(app: Any) -> list[str]:
    """Every route's template with its parameters filled, and paths near them."""
    templates = [r.path for r in app.router.routes if isinstance(r, APIRoute)]
    filled = [re.sub(r"\{[^}]+\}", "k1", t) for t in templates]
    near = ["/", "", "/examples", "/examples/", "/examples/cache", "/examples/cache/", "/nope"]
    return sorted({*filled, *near, *(p + "/" for p in filled), *(p + "/x/y" for p in filled)})


def test_contract_routes_come_before_fastapis_own() -> None:
    """A request tries the routes in order: the contract's, not the OpenAPI document and the
    documentation pages, come first."""
    app = create_code_first(settings=WebSettings())
    contract = [isinstance(r, ContractRoute) for r in app.router.routes]
    assert contract == sorted(contract, reverse=True)
    assert contract.count(True) == 32
    assert contract.count(False) == 5


@pytest.mark.parametrize("root_path", ["", "/api"])
def test_a_contract_route_matches_every_path_as_fastapi_would(root_path: str) -> None:
    app = create_code_first(settings=WebSettings())
    routes = [r for r in app.router.routes if isinstance(r, ContractRoute)]
    assert all(r.literal_prefix is not None for r in routes)
    for path in _paths(app):
        for method in ("GET", "POST", "DELETE"):
            scope: dict[str, Any] = {"type": "http", "method": method, "path": root_path + path}
            scope |= {"root_path": root_path, "router": app.router}
            for route in routes:
                assert route.matches(dict(scope)) == APIRoute.matches(route, dict(scope)), (
                    route.path,
                    method,
                    path,
                )


class _NeverAsked:
    def match(self, path: str) -> None:
        raise AssertionError(f"the expression was tried on {path}")


def test_a_path_without_the_literal_prefix_is_turned_away_before_the_expression() -> None:
    """What makes a try cheap: the route's regular expression is not run on a path that
    cannot match it (the contract's cache GET comes after 22 such tries)."""
    app = create_code_first(settings=WebSettings())
    route = next(r for r in app.router.routes if getattr(r, "path", "") == "/examples/cache/{key}")
    assert isinstance(route, ContractRoute)
    assert route.literal_prefix == "/examples/cache/"
    route_regex = route.path_regex
    try:
        route.path_regex = _NeverAsked()  # type: ignore[assignment]
        for path in ("/health", "/examples/postgres/items/1", "/examples/cachex"):
            scope = {"type": "http", "method": "GET", "path": path, "router": app.router}
            assert route.matches(scope) == (Match.NONE, {})
    finally:
        route.path_regex = route_regex


async def test_a_contract_route_included_in_another_app_is_matched_as_fastapi_matches_any() -> None:
    """create_app checks the prefix only for the requests its own router routes: the same
    route, included in another app under a prefix of its own, still answers there."""
    router = contract_router()

    @router.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    create_app("sample", [router], settings=WebSettings())
    route = router.routes[0]
    assert isinstance(route, ContractRoute)
    assert route.literal_prefix == "/items/"
    other = FastAPI()
    other.include_router(router, prefix="/v2")
    transport = httpx.ASGITransport(app=other)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.get("/v2/items/7")).json() == {"item_id": 7}
        assert (await client.get("/items/7")).status_code == 404
