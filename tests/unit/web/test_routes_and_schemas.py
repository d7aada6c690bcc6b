"""How create_app composes routes and documents problems, kept cheap in memory.

- The routes of the apps' routers are the app's routes, built once: FastAPI's include_router
  would build each again for the app (validators and serializers of every parameter and
  response), about 1 MB for the contract's routes.
- Problem responses refer to one `Problem` schema instead of declaring `model: Problem` on every
  error status of every route (FastAPI builds a validator and a serializer for each), and the
  document still carries `Problem` and `FieldError` exactly as FastAPI would generate them.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import APIRouter
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from code_first.app import create_app as create_code_first
from code_first.routes import ROUTERS
from devstack_web import WebSettings, contract_router, create_app, problem_responses
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
