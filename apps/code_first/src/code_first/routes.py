"""Every operation of openapi/devstack.yaml, written as FastAPI routes.

Each route is a thin adapter: parameters validated by their declarations, one devstack_client
use case called, its result returned as this app's model. Errors are the library's exceptions,
answered as problem documents by devstack_web.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import PlainTextResponse
from pydantic import AfterValidator

from code_first import models as m
from devstack_client import BACKENDS, Backend
from devstack_client import ItemCreate as LibItemCreate
from devstack_web import (
    CONTRACT_VERSION,
    StackDep,
    consume_response,
    contract,
    contract_router,
    problem_responses,
)

IMPLEMENTATION: Final = "code_first"


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return problem_responses(statuses)


# -- parameters ----------------------------------------------------------------------------------


def _not_dot_segment(value: str) -> str:
    if value in (".", ".."):
        raise ValueError("must not be . or ..")
    return value


def _not_reserved_queue(value: str) -> str:
    _not_dot_segment(value)
    if value.startswith("amq."):
        raise ValueError("must not start with amq. (RabbitMQ reserves it)")
    return value


HealthService = Annotated[str, Path(min_length=1, description="A dependency's name.")]
VaultService = Annotated[str, Path(min_length=1, description="A service with a secret.")]
SecretKey = Annotated[str, Path(min_length=1, description="A key of the secret.")]
ItemId = Annotated[str, Path(min_length=1, description="An item id as returned on creation.")]
ItemLimit = Annotated[int, Query(ge=1, le=100, description="How many items at most.")]
CacheKey = Annotated[
    str,
    Path(
        pattern=r"^[A-Za-z0-9:_.-]{1,200}$",
        json_schema_extra={"not": {"enum": [".", ".."]}},
        description="1 to 200 of A-Z a-z 0-9 : _ . - (not . or ..).",
    ),
    AfterValidator(_not_dot_segment),
]
QueueName = Annotated[
    str,
    Path(
        pattern=r"^[A-Za-z0-9._-]{1,200}$",
        json_schema_extra={
            "not": {"anyOf": [{"enum": [".", ".."]}, {"type": "string", "pattern": r"^amq\."}]}
        },
        description="1 to 200 of A-Z a-z 0-9 . _ - (not . or .., not amq.*).",
    ),
    AfterValidator(_not_reserved_queue),
]
ConsumeMax = Annotated[
    int, Query(alias="max", ge=1, le=100, description="How many messages at most.")
]
RedisNodeAddress = Annotated[str, Path(min_length=1, description="A node as host:port.")]


# -- service and health --------------------------------------------------------------------------

service = contract_router(tags=["service"])
health = contract_router(tags=["health"])


@service.get("/", operation_id="serviceInfo", summary="Service information and links")
async def service_info() -> m.ServiceInfo:
    return m.ServiceInfo.model_validate(contract.service_info(IMPLEMENTATION, CONTRACT_VERSION))


@service.get(
    "/metrics",
    operation_id="serviceMetrics",
    summary="Prometheus metrics",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def service_metrics(stack: StackDep) -> Response:
    return contract.metrics_response(stack)


@health.get("/health", operation_id="healthLiveness", summary="Liveness")
async def health_liveness() -> m.Liveness:
    return m.Liveness(status="healthy")


_HEALTH_503: dict[int | str, dict[str, Any]] = {
    503: {
        "model": m.HealthReport,
        "description": "At least one check is degraded or unhealthy.",
        "headers": contract.HEALTH_RETRY_AFTER_HEADER,
    }
}


@health.get(
    "/health/all",
    operation_id="healthAll",
    summary="Every dependency, checked concurrently",
    response_model=m.HealthReport,
    responses=_HEALTH_503,
)
async def health_all(stack: StackDep, response: Response) -> m.HealthReport:
    return m.HealthReport.model_validate(await contract.health_report(stack, response))


@health.get(
    "/health/{service}",
    operation_id="healthService",
    summary="One dependency",
    response_model=m.HealthReport,
    responses={**errors(404), **_HEALTH_503},
)
async def health_service(
    stack: StackDep, service: HealthService, response: Response
) -> m.HealthReport:
    report = await contract.health_report(stack, response, service)
    return m.HealthReport.model_validate(report)


# -- vault ---------------------------------------------------------------------------------------

vault = contract_router(tags=["vault"], prefix="/examples/vault")


@vault.get(
    "/secret/{service}",
    operation_id="vaultGetSecret",
    summary="A service's secret, secret values masked",
    responses=errors(404, 429, 503, 504),
)
async def vault_get_secret(stack: StackDep, service: VaultService) -> m.VaultSecret:
    return m.VaultSecret.model_validate(await stack.vault_secrets.read(service))


@vault.get(
    "/secret/{service}/{key}",
    operation_id="vaultGetSecretKey",
    summary="One key of a service's secret, masked when secret-looking",
    responses=errors(404, 429, 503, 504),
)
async def vault_get_secret_key(
    stack: StackDep, service: VaultService, key: SecretKey
) -> m.VaultSecretValue:
    return m.VaultSecretValue.model_validate(await stack.vault_secrets.read_key(service, key))


# -- databases: the same five operations on each of the three backends ---------------------------


def database_router(backend: Backend, label: str) -> APIRouter:
    router = contract_router(tags=[backend], prefix=f"/examples/{backend}")

    @router.get(
        "/query",
        operation_id=f"{backend}Query",
        summary=f"Query {label} through the pool",
        responses=errors(429, 503, 504),
    )
    async def query(stack: StackDep) -> m.DatabaseQueryResult:
        return m.DatabaseQueryResult.model_validate(await stack.items(backend).query())

    @router.get(
        "/items",
        operation_id=f"{backend}ListItems",
        summary=f"List {label} items, newest first",
        responses=errors(422, 429, 503, 504),
    )
    async def list_items(stack: StackDep, limit: ItemLimit = 20) -> m.ItemList:
        return m.ItemList.model_validate(await stack.items(backend).list(limit=limit))

    @router.post(
        "/items",
        operation_id=f"{backend}CreateItem",
        summary=f"Create an item in {label}",
        status_code=201,
        responses={
            201: {"headers": contract.LOCATION_HEADER},
            **errors(400, 413, 415, 422, 429, 503, 504),
        },
    )
    async def create_item(stack: StackDep, body: m.ItemCreate, response: Response) -> m.Item:
        item = await stack.items(backend).create(
            LibItemCreate(name=body.name, quantity=body.quantity)
        )
        contract.item_created(response, backend, item.id)
        return m.Item.model_validate(item)

    @router.get(
        "/items/{item_id}",
        operation_id=f"{backend}GetItem",
        summary=f"Get a {label} item",
        responses=errors(404, 429, 503, 504),
    )
    async def get_item(stack: StackDep, item_id: ItemId) -> m.Item:
        return m.Item.model_validate(await stack.items(backend).get(item_id))

    @router.delete(
        "/items/{item_id}",
        operation_id=f"{backend}DeleteItem",
        summary=f"Delete a {label} item",
        status_code=204,
        response_class=Response,
        responses=errors(404, 429, 503, 504),
    )
    async def delete_item(stack: StackDep, item_id: ItemId) -> Response:
        await stack.items(backend).delete(item_id)
        return Response(status_code=204)

    return router


_LABELS: dict[Backend, str] = {"postgres": "PostgreSQL", "mysql": "MySQL", "mongodb": "MongoDB"}
databases = [database_router(backend, _LABELS[backend]) for backend in BACKENDS]


# -- cache ---------------------------------------------------------------------------------------

cache = contract_router(tags=["cache"], prefix="/examples/cache")


@cache.get(
    "/{key}",
    operation_id="cacheGet",
    summary="Read a cached value and its remaining time to live",
    responses=errors(404, 422, 429, 503, 504),
)
async def cache_get(stack: StackDep, key: CacheKey) -> m.CacheEntry:
    return m.CacheEntry.model_validate(await stack.cache.get(key))


@cache.put(
    "/{key}",
    operation_id="cachePut",
    summary="Store a value, with an optional time to live",
    responses={
        201: {"model": m.CacheEntry, "description": "The key was created."},
        **errors(400, 413, 415, 422, 429, 503, 504),
    },
)
async def cache_put(
    stack: StackDep, key: CacheKey, body: m.CacheWrite, response: Response
) -> m.CacheEntry:
    entry, created = await stack.cache.put(key, body.value, ttl_seconds=body.ttl_seconds)
    contract.cache_written(response, created=created)
    return m.CacheEntry.model_validate(entry)


@cache.delete(
    "/{key}",
    operation_id="cacheDelete",
    summary="Delete a cached value",
    status_code=204,
    response_class=Response,
    responses=errors(404, 422, 429, 503, 504),
)
async def cache_delete(stack: StackDep, key: CacheKey) -> Response:
    await stack.cache.delete(key)
    return Response(status_code=204)


# -- messaging -----------------------------------------------------------------------------------

messaging = contract_router(tags=["messaging"], prefix="/examples/messaging/queues")


@messaging.get(
    "/{queue}",
    operation_id="messagingGetQueue",
    summary="A queue's message and consumer counts",
    responses=errors(404, 422, 429, 503, 504),
)
async def messaging_get_queue(stack: StackDep, queue: QueueName) -> m.QueueInfo:
    return m.QueueInfo.model_validate(await stack.queues.inspect(queue))


@messaging.post(
    "/{queue}/messages",
    operation_id="messagingPublish",
    summary="Publish a JSON object to a queue",
    status_code=202,
    responses=errors(400, 413, 415, 422, 429, 503, 504),
)
async def messaging_publish(
    stack: StackDep, queue: QueueName, body: m.JsonObject
) -> m.PublishResult:
    return m.PublishResult.model_validate(await stack.queues.publish(queue, body))


@messaging.get(
    "/{queue}/messages",
    operation_id="messagingConsume",
    summary="Consume up to `max` messages",
    response_model=m.ConsumeResult,
    responses=errors(404, 422, 429, 503, 504),
)
async def messaging_consume(
    stack: StackDep, queue: QueueName, max_messages: ConsumeMax = 10
) -> Response:
    # Acknowledged once this answer is sent (devstack_web.consume_response).
    return await consume_response(stack, queue, max_messages, m.ConsumeResult.model_validate)


# -- the Redis cluster ---------------------------------------------------------------------------

redis = contract_router(tags=["redis"], prefix="/examples/redis")


@redis.get(
    "/cluster/nodes",
    operation_id="redisClusterNodes",
    summary="The cluster's nodes",
    responses=errors(429, 503, 504),
)
async def redis_cluster_nodes(stack: StackDep) -> m.RedisClusterNodes:
    nodes = await stack.cluster.nodes()
    return m.RedisClusterNodes(nodes=[m.RedisNode.model_validate(n) for n in nodes])


@redis.get(
    "/cluster/slots",
    operation_id="redisClusterSlots",
    summary="Slot ranges, their nodes, and coverage of all 16384 slots",
    responses=errors(429, 503, 504),
)
async def redis_cluster_slots(stack: StackDep) -> m.RedisClusterSlots:
    return m.RedisClusterSlots.model_validate(await stack.cluster.slots())


@redis.get(
    "/cluster/info",
    operation_id="redisClusterInfo",
    summary="CLUSTER INFO",
    responses=errors(429, 503, 504),
)
async def redis_cluster_info(stack: StackDep) -> m.RedisClusterInfo:
    return m.RedisClusterInfo.model_validate(await stack.cluster.info())


@redis.get(
    "/nodes/{node}/info",
    operation_id="redisNodeInfo",
    summary="INFO of one cluster node",
    responses=errors(404, 429, 503, 504),
)
async def redis_node_info(stack: StackDep, node: RedisNodeAddress) -> m.RedisNodeInfo:
    return m.RedisNodeInfo.model_validate(await stack.cluster.node_info(node))


ROUTERS: list[APIRouter] = [service, health, vault, *databases, cache, messaging, redis]
