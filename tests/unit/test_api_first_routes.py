"""api_first serves exactly the contract's operations, and its handlers adapt the library.

The contract is read here straight from openapi/devstack.yaml (not from the generated table), so
these tests also hold the generation to the contract. The handler checks run the real app in
process (httpx.ASGITransport, no lifespan) with a stand-in for DevStackClient.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi import FastAPI
from fastapi.routing import APIRoute

from api_first.app import create_app
from api_first.contract import Operation
from api_first.generated import models
from api_first.generated.operations import OPERATIONS
from api_first.handlers import HANDLERS
from api_first.routes import ContractMismatch, build_router
from devstack_client import (
    CacheEntry,
    CheckResult,
    DependencyUnavailable,
    HealthReport,
    Item,
    ItemCreate,
    Metrics,
    NotFound,
    PublishResult,
)

ROOT = Path(__file__).resolve().parents[2]
SPEC = yaml.safe_load((ROOT / "openapi" / "devstack.yaml").read_text(encoding="utf-8"))
METHODS = ("get", "put", "post", "patch", "delete")
KEYWORDS = ("type", "pattern", "minLength", "maxLength", "minimum", "maximum", "default")


def contract_operations() -> dict[str, tuple[str, str]]:
    """operationId -> (METHOD, path), from the contract itself."""
    found: dict[str, tuple[str, str]] = {}
    for path, item in SPEC["paths"].items():
        for method in METHODS:
            if method in item:
                found[item[method]["operationId"]] = (method.upper(), path)
    return found


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = SPEC
        for part in node["$ref"][2:].split("/"):
            target = target[part]
        node = target
    return node


@pytest.fixture(scope="module")
def app() -> FastAPI:
    return create_app()


def routes(app: FastAPI) -> list[APIRoute]:
    """The app's operations, in matching order. FastAPI 0.16x keeps an included router as one
    entry (`_IncludedRouter`, whose `original_router` holds the routes); api_first includes its
    router without a prefix."""

    def walk(entries: Iterable[Any]) -> Iterable[APIRoute]:
        for entry in entries:
            included = getattr(entry, "original_router", None)
            if included is not None:
                yield from walk(included.routes)
            elif isinstance(entry, APIRoute) and entry.include_in_schema:
                yield entry

    return list(walk(app.routes))


# -- the routes are the contract's operations ----------------------------------------------------


def test_every_operation_has_exactly_one_route_with_its_method_and_path(app: FastAPI) -> None:
    expected = contract_operations()
    served: dict[str, list[tuple[str, str]]] = {}
    for route in routes(app):
        assert route.operation_id is not None, route.path
        assert route.methods is not None, route.path
        for method in route.methods:
            served.setdefault(route.operation_id, []).append((method, route.path))
    assert served == {op: [where] for op, where in expected.items()}


def test_the_openapi_document_lists_the_contracts_operations(app: FastAPI) -> None:
    document = app.openapi()
    listed = {
        op["operationId"]: (method.upper(), path)
        for path, item in document["paths"].items()
        for method, op in item.items()
    }
    assert listed == contract_operations()


def test_every_operation_has_one_handler_and_every_handler_an_operation() -> None:
    assert set(HANDLERS) == set(contract_operations())
    assert len({op.operation_id for op in OPERATIONS}) == len(OPERATIONS)


def test_success_statuses_and_parameters_are_the_contracts(app: FastAPI) -> None:
    document = app.openapi()
    for path, item in SPEC["paths"].items():
        for method in METHODS:
            if method not in item:
                continue
            spec_op, served = item[method], document["paths"][path][method]
            assert set(served["responses"]) == set(spec_op["responses"]), spec_op["operationId"]
            declared = [
                resolve(p) for p in [*item.get("parameters", []), *spec_op.get("parameters", [])]
            ]
            params = {(p["name"], p["in"]): p for p in served.get("parameters", [])}
            assert set(params) == {(p["name"], p["in"]) for p in declared}, spec_op["operationId"]
            for p in declared:
                if p["in"] == "header":
                    continue
                got, want = params[(p["name"], p["in"])], p["schema"]
                assert got.get("required", False) == p.get("required", False)
                for keyword in (
                    "type",
                    "pattern",
                    "minLength",
                    "maxLength",
                    "minimum",
                    "maximum",
                    "default",
                ):
                    assert got["schema"].get(keyword) == want.get(keyword), (p["name"], keyword)


def test_the_health_paths_are_matched_in_the_contracts_order(app: FastAPI) -> None:
    paths = [r.path for r in routes(app)]
    assert paths.index("/health/all") < paths.index("/health/{service}")


# -- the builder refuses a mismatch -----------------------------------------------------------


def test_an_operation_without_a_handler_stops_the_build() -> None:
    handlers = {k: v for k, v in HANDLERS.items() if k != "cacheGet"}
    with pytest.raises(ContractMismatch, match="cacheGet"):
        build_router(OPERATIONS, handlers)


def test_a_new_operation_in_the_contract_stops_the_build() -> None:
    new = dataclasses.replace(OPERATIONS[0], operation_id="serviceSomethingNew", path="/new")
    with pytest.raises(ContractMismatch, match="serviceSomethingNew"):
        build_router([*OPERATIONS, new], HANDLERS)


def test_a_handler_whose_parameters_differ_stops_the_build() -> None:
    async def cache_get(stack: Any, name: str) -> None:  # noqa: ARG001 (the names are the test)
        raise AssertionError

    with pytest.raises(ContractMismatch, match="cacheGet"):
        build_router(OPERATIONS, {**HANDLERS, "cacheGet": cache_get})


def test_a_handler_with_the_wrong_body_stops_the_build() -> None:
    async def cache_put(stack: Any, key: str, body: models.ItemCreate) -> None:  # noqa: ARG001
        raise AssertionError

    with pytest.raises(ContractMismatch, match="cachePut"):
        build_router(OPERATIONS, {**HANDLERS, "cachePut": cache_put})


# -- handlers, against a stand-in client ----------------------------------------------------------


class FakeCache:
    def __init__(self) -> None:
        self.values: dict[str, tuple[str, int | None]] = {}

    async def get(self, key: str) -> CacheEntry:
        if key not in self.values:
            raise NotFound(f"cache key {key!r} does not exist")
        value, ttl = self.values[key]
        return CacheEntry(key=key, value=value, ttl_seconds=ttl)

    async def put(
        self, key: str, value: str, ttl_seconds: int | None = None
    ) -> tuple[CacheEntry, bool]:
        created = key not in self.values
        self.values[key] = (value, ttl_seconds)
        return CacheEntry(key=key, value=value, ttl_seconds=ttl_seconds), created

    async def delete(self, key: str) -> None:
        if self.values.pop(key, None) is None:
            raise NotFound(f"cache key {key!r} does not exist")


class FakeItems:
    def __init__(self) -> None:
        self.created: list[ItemCreate] = []

    async def create(self, item: ItemCreate) -> Item:
        self.created.append(item)
        return Item(
            id="7d3f0e5c-8a61-4c1e-9b5e-2f4a6c8d0b12",
            name=item.name,
            quantity=item.quantity,
            created_at=dt.datetime(2025, 1, 31, 12, tzinfo=dt.UTC),
        )

    async def get(self, item_id: str) -> Item:
        raise NotFound("no postgres item has this id")


class FakeQueues:
    def __init__(self) -> None:
        self.published: list[dict[str, Any]] = []

    async def publish(self, queue: str, payload: dict[str, Any]) -> PublishResult:
        self.published.append(payload)
        return PublishResult(queue=queue, message_id="0e7c2b9a-4f7d-4d3b-8f3e-1a2b3c4d5e6f")

    async def inspect(self, queue: str) -> Any:
        raise DependencyUnavailable("rabbitmq", "connection refused", retry_after=7)


@dataclasses.dataclass
class FakeHealthChecker:
    probes: dict[str, Any]


class FakeStack:
    def __init__(self) -> None:
        self.cache = FakeCache()
        self.postgres_items = FakeItems()
        self.queues = FakeQueues()
        self.metrics = Metrics()
        self.health_checker = FakeHealthChecker({"vault": None, "postgres": None})
        self.report = HealthReport(
            status="degraded",
            checks={
                "vault": CheckResult(status="degraded", latency_ms=0.3, error="unavailable"),
                "postgres": CheckResult(status="healthy", latency_ms=1.5, error=None),
            },
        )

    def items(self, backend: str) -> FakeItems:
        assert backend == "postgres"
        return self.postgres_items

    async def health(self, names: Iterable[str] | None = None) -> HealthReport:
        if names is None:
            return self.report
        checks = {n: c for n, c in self.report.checks.items() if n in set(names)}
        return HealthReport(status="healthy", checks=checks)


@pytest.fixture
def stack() -> FakeStack:
    return FakeStack()


@pytest.fixture
async def client(stack: FakeStack) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app()
    app.state.stack = stack  # no lifespan: the stand-in is the app's client
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


async def test_service_info_names_this_implementation(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    assert response.json() == {
        "name": "devstack-core",
        "implementation": "api_first",
        "version": SPEC["info"]["version"],
        "links": {
            "self": "/",
            "health": "/health",
            "health_all": "/health/all",
            "metrics": "/metrics",
        },
    }
    assert response.headers["X-Request-ID"]


async def test_cache_put_is_201_when_created_then_200(
    client: httpx.AsyncClient, stack: FakeStack
) -> None:
    first = await client.put(
        "/examples/cache/session:42", json={"value": "hello", "ttl_seconds": 60}
    )
    assert (first.status_code, first.json()) == (
        201,
        {"key": "session:42", "value": "hello", "ttl_seconds": 60},
    )
    second = await client.put("/examples/cache/session:42", json={"value": "again"})
    assert (second.status_code, second.json()["ttl_seconds"]) == (200, None)
    assert stack.cache.values["session:42"] == ("again", None)


async def test_a_null_ttl_is_invalid_not_absent(
    client: httpx.AsyncClient, stack: FakeStack
) -> None:
    response = await client.put("/examples/cache/k", json={"value": "v", "ttl_seconds": None})
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["errors"][0]["location"] == "body"
    assert stack.cache.values == {}


async def test_a_key_outside_the_pattern_is_422_from_the_contracts_constraint(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/examples/cache/bad%20key")
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"location": "path", "field": "key", "detail": response.json()["errors"][0]["detail"]}
    ]


async def test_a_missing_key_is_a_404_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/examples/cache/nothing-here")
    assert response.status_code == 404
    assert response.json()["title"] == "Not Found"


async def test_create_item_answers_201_with_location(
    client: httpx.AsyncClient, stack: FakeStack
) -> None:
    response = await client.post("/examples/postgres/items", json={"name": "widget"})
    assert response.status_code == 201
    body = response.json()
    assert response.headers["Location"] == f"/examples/postgres/items/{body['id']}"
    assert body["quantity"] == 0
    assert body["created_at"].startswith("2025-01-31T12:00:00")
    assert stack.postgres_items.created == [ItemCreate(name="widget", quantity=0)]


@pytest.mark.parametrize(
    "payload", [{"name": "w", "quantity": None}, {"name": ""}, {"name": "w", "colour": "red"}]
)
async def test_an_invalid_item_never_reaches_the_library(
    client: httpx.AsyncClient, stack: FakeStack, payload: dict[str, Any]
) -> None:
    response = await client.post("/examples/postgres/items", json=payload)
    assert response.status_code == 422
    assert stack.postgres_items.created == []


async def test_published_payloads_keep_their_json_types(
    client: httpx.AsyncClient, stack: FakeStack
) -> None:
    payload = {"order_id": 42, "total": 9.5, "paid": True, "tags": ["a", 1], "note": None}
    response = await client.post("/examples/messaging/queues/orders/messages", json=payload)
    assert response.status_code == 202
    assert stack.queues.published == [payload]
    assert type(stack.queues.published[0]["order_id"]) is int


async def test_a_dependency_outage_is_a_503_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/examples/messaging/queues/orders")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "7"
    assert response.json()["dependency"] == "rabbitmq"


async def test_degraded_health_is_a_503_report_with_retry_after(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/all")
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/json")
    assert int(response.headers["Retry-After"]) >= 1
    assert response.json() == {
        "status": "degraded",
        "checks": {
            "vault": {"status": "degraded", "latency_ms": 0.3, "error": "unavailable"},
            "postgres": {"status": "healthy", "latency_ms": 1.5, "error": None},
        },
    }


async def test_one_healthy_service_is_200_and_an_unknown_one_404(client: httpx.AsyncClient) -> None:
    healthy = await client.get("/health/postgres")
    assert healthy.status_code == 200
    assert "Retry-After" not in healthy.headers
    assert healthy.json()["checks"] == {
        "postgres": {"status": "healthy", "latency_ms": 1.5, "error": None}
    }
    unknown = await client.get("/health/nosuch")
    assert unknown.status_code == 404
    assert unknown.headers["content-type"].startswith("application/problem+json")


async def test_metrics_are_prometheus_text(client: httpx.AsyncClient) -> None:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")


def test_operations_table_types() -> None:
    assert all(isinstance(op, Operation) for op in OPERATIONS)


@pytest.mark.parametrize("quantity", ["3", True, False, 1.5, None, "x"])
async def test_a_quantity_must_be_a_json_integer(client: httpx.AsyncClient, quantity: Any) -> None:
    response = await client.post(
        "/examples/postgres/items", json={"name": "n", "quantity": quantity}
    )
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["/quantity"]


@pytest.mark.parametrize(
    "path", ["/examples/messaging/queues/amq.parity", "/examples/messaging/queues/amq.x/messages"]
)
async def test_the_contracts_not_rules_give_422_with_errors(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path)
    assert response.status_code == 422
    assert response.json()["errors"][0]["location"] == "path"
    assert response.json()["errors"][0]["field"] == "queue"


async def test_a_204_has_no_body_and_no_content_type(client: httpx.AsyncClient) -> None:
    await client.put("/examples/cache/gone", json={"value": "v"})
    response = await client.delete("/examples/cache/gone")
    assert response.status_code == 204
    assert response.content == b""
    assert "content-type" not in response.headers
