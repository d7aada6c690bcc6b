"""What each operation of the contract does: one handler per operationId, each a thin adapter.

A handler takes the operation's parameters by their contract names (plain Python types: the
route builder adds their location and constraints from the contract), `body` typed with the
generated model of the request body, `stack` (the app's one DevStackClient) and, when it sets a
status or a header, `response`. It calls one devstack_client use case and returns a generated
model; errors are the library's exceptions, which devstack_web turns into problem documents.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

from fastapi import Response
from pydantic import MISSING, BaseModel

import devstack_client as lib
from api_first.generated import models
from api_first.generated.operations import CONTRACT_VERSION
from devstack_web import StackDep, consume_response, contract

Handler = Callable[..., Awaitable[Any]]
HANDLERS: dict[str, Handler] = {}

IMPLEMENTATION: Final = "api_first"

M = TypeVar("M", bound=BaseModel)
H = TypeVar("H", bound=Handler)


def operation(operation_id: str) -> Callable[[H], H]:
    """Register the decorated function as the handler of `operation_id` (once)."""

    def register(handler: H) -> H:
        if operation_id in HANDLERS:
            raise ValueError(f"{operation_id} has two handlers")
        HANDLERS[operation_id] = handler
        return handler

    return register


def as_contract(model: type[M], value: BaseModel) -> M:
    """A library result as the contract's generated model (validated against the contract)."""
    return model.model_validate(value.model_dump())


# -- service and health -------------------------------------------------------------------------


@operation("serviceInfo")
async def service_info() -> models.ServiceInfo:
    return models.ServiceInfo.model_validate(
        contract.service_info(IMPLEMENTATION, CONTRACT_VERSION)
    )


@operation("healthLiveness")
async def health_liveness() -> models.Liveness:
    return models.Liveness(status="healthy")


@operation("healthAll")
async def health_all(stack: StackDep, response: Response) -> models.HealthReport:
    return as_contract(models.HealthReport, await contract.health_report(stack, response))


@operation("healthService")
async def health_service(stack: StackDep, response: Response, service: str) -> models.HealthReport:
    report = await contract.health_report(stack, response, service)
    return as_contract(models.HealthReport, report)


@operation("serviceMetrics")
async def service_metrics(stack: StackDep) -> Response:
    return contract.metrics_response(stack)


# -- vault ------------------------------------------------------------------------------------


@operation("vaultGetSecret")
async def vault_get_secret(stack: StackDep, service: str) -> models.VaultSecret:
    return as_contract(models.VaultSecret, await stack.vault_secrets.read(service))


@operation("vaultGetSecretKey")
async def vault_get_secret_key(stack: StackDep, service: str, key: str) -> models.VaultSecretValue:
    return as_contract(models.VaultSecretValue, await stack.vault_secrets.read_key(service, key))


# -- databases: the same five operations for each backend ---------------------------------------


def _item_handlers(backend: lib.Backend) -> None:
    @operation(f"{backend}Query")
    async def query(stack: StackDep) -> models.DatabaseQueryResult:
        return as_contract(models.DatabaseQueryResult, await stack.items(backend).query())

    @operation(f"{backend}ListItems")
    async def list_items(stack: StackDep, limit: int) -> models.ItemList:
        return as_contract(models.ItemList, await stack.items(backend).list(limit=limit))

    @operation(f"{backend}CreateItem")
    async def create_item(
        stack: StackDep, response: Response, body: models.ItemCreate
    ) -> models.Item:
        new = lib.ItemCreate(name=body.name, quantity=body.quantity)
        item = await stack.items(backend).create(new)
        contract.item_created(response, backend, item.id)
        return as_contract(models.Item, item)

    @operation(f"{backend}GetItem")
    async def get_item(stack: StackDep, item_id: str) -> models.Item:
        return as_contract(models.Item, await stack.items(backend).get(item_id))

    @operation(f"{backend}DeleteItem")
    async def delete_item(stack: StackDep, item_id: str) -> None:
        await stack.items(backend).delete(item_id)


for _backend in lib.BACKENDS:
    _item_handlers(_backend)


# -- cache --------------------------------------------------------------------------------------


@operation("cacheGet")
async def cache_get(stack: StackDep, key: str) -> models.CacheEntry:
    return as_contract(models.CacheEntry, await stack.cache.get(key))


@operation("cachePut")
async def cache_put(
    stack: StackDep, response: Response, key: str, body: models.CacheWrite
) -> models.CacheEntry:
    ttl = None if body.ttl_seconds is MISSING else body.ttl_seconds
    entry, created = await stack.cache.put(key, body.value, ttl_seconds=ttl)
    contract.cache_written(response, created=created)
    return as_contract(models.CacheEntry, entry)


@operation("cacheDelete")
async def cache_delete(stack: StackDep, key: str) -> None:
    await stack.cache.delete(key)


# -- messaging ----------------------------------------------------------------------------------


@operation("messagingGetQueue")
async def messaging_get_queue(stack: StackDep, queue: str) -> models.QueueInfo:
    return as_contract(models.QueueInfo, await stack.queues.inspect(queue))


@operation("messagingPublish")
async def messaging_publish(
    stack: StackDep, queue: str, body: models.JsonObject
) -> models.PublishResult:
    return as_contract(models.PublishResult, await stack.queues.publish(queue, body.root))


@operation("messagingConsume")
async def messaging_consume(stack: StackDep, queue: str, max: int) -> Response:
    # Acknowledged once this answer is sent (devstack_web.consume_response).
    return await consume_response(
        stack, queue, max, lambda result: as_contract(models.ConsumeResult, result)
    )


# -- the Redis cluster --------------------------------------------------------------------------


@operation("redisClusterNodes")
async def redis_cluster_nodes(stack: StackDep) -> models.RedisClusterNodes:
    nodes = await stack.cluster.nodes()
    return models.RedisClusterNodes.model_validate({"nodes": [n.model_dump() for n in nodes]})


@operation("redisClusterSlots")
async def redis_cluster_slots(stack: StackDep) -> models.RedisClusterSlots:
    return as_contract(models.RedisClusterSlots, await stack.cluster.slots())


@operation("redisClusterInfo")
async def redis_cluster_info(stack: StackDep) -> models.RedisClusterInfo:
    return as_contract(models.RedisClusterInfo, await stack.cluster.info())


@operation("redisNodeInfo")
async def redis_node_info(stack: StackDep, node: str) -> models.RedisNodeInfo:
    return as_contract(models.RedisNodeInfo, await stack.cluster.node_info(node))
