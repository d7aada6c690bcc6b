"""code_first's own request and response models: the contract's schemas, written as Pydantic.

The library's models carry the data; these carry the contract's constraints too (lengths,
bounds, patterns, formats), so FastAPI's generated OpenAPI says what openapi/devstack.yaml says
(tests/unit/test_code_first_openapi.py holds them to it) and responses are checked against it.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, WithJsonSchema, field_validator
from pydantic.json_schema import SkipJsonSchema
from typing_extensions import TypeAliasType

from devstack_web import ContractModel

MAX_QUANTITY = 2**31 - 1
NODE_ID = r"^[0-9a-f]{40}$"
REDIS_ADDRESS = r"^[^\s:]+:[0-9]{1,5}$"

DependencyName = Literal["vault", "postgres", "mysql", "mongodb", "redis", "rabbitmq"]
HealthStatus = Literal["healthy", "degraded", "unhealthy"]
Implementation = Literal["code_first", "api_first", "golang", "nodejs", "rust"]
Slot = Annotated[int, Field(ge=0, le=16383)]
SlotCount = Annotated[int, Field(ge=0, le=16384)]
Count = Annotated[int, Field(ge=0)]
RedisAddress = Annotated[str, Field(pattern=REDIS_ADDRESS)]


class Closed(ContractModel):
    """additionalProperties: false, as every contract object that is not a map."""

    model_config = ConfigDict(extra="forbid", from_attributes=True)


# -- JSON values -------------------------------------------------------------------------------

# Any JSON value: the body was parsed as JSON already, so no further validation; the schema is
# the contract's recursive one rather than `{}`.
JsonValue = TypeAliasType(
    "JsonValue",
    Annotated[
        Any,
        WithJsonSchema(
            {
                "description": "Any JSON value, typed recursively rather than left as `{}`.",
                "type": ["object", "array", "string", "number", "boolean", "null"],
                "additionalProperties": {"$ref": "#/components/schemas/JsonValue"},
                "items": {"$ref": "#/components/schemas/JsonValue"},
            }
        ),
    ],
)
JsonObject = TypeAliasType("JsonObject", dict[str, JsonValue])


# -- service and health ------------------------------------------------------------------------


class ServiceLinks(Closed):
    self: Literal["/"]
    health: Literal["/health"]
    health_all: Literal["/health/all"]
    metrics: Literal["/metrics"]


class ServiceInfo(Closed):
    name: Literal["devstack-core"]
    implementation: Implementation
    version: str = Field(pattern=r"^[0-9]+\.[0-9]+\.[0-9]+$")
    links: ServiceLinks


class Liveness(Closed):
    status: Literal["healthy"]


class HealthCheck(Closed):
    status: HealthStatus
    latency_ms: float = Field(ge=0)
    error: Literal["unavailable", "timeout", "not_ready"] | None


class HealthReport(Closed):
    status: HealthStatus
    checks: dict[DependencyName, HealthCheck] = Field(min_length=1)


# -- vault -------------------------------------------------------------------------------------


class VaultSecret(Closed):
    service: str
    path: str
    version: int = Field(ge=1)
    data: dict[str, str]
    masked_keys: list[str]


class VaultSecretValue(Closed):
    service: str
    key: str
    value: str
    masked: bool


# -- databases ---------------------------------------------------------------------------------


class DatabaseQueryResult(Closed):
    database: Literal["postgres", "mysql", "mongodb"]
    server_version: str
    server_time: dt.datetime


class ItemCreate(Closed):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[^\x00]*$")  # no NUL: see contract
    quantity: int = Field(default=0, ge=0, le=MAX_QUANTITY)


class Item(Closed):
    id: str = Field(min_length=1)
    name: str = Field(min_length=1, max_length=100)
    quantity: int = Field(ge=0, le=MAX_QUANTITY)
    created_at: dt.datetime


class ItemList(Closed):
    items: list[Item] = Field(max_length=100)


# -- cache -------------------------------------------------------------------------------------


class CacheWrite(Closed):
    value: str
    # Absent (never null) when omitted: SkipJsonSchema keeps `null` out of the schema.
    ttl_seconds: Annotated[int, Field(ge=1, le=86400)] | SkipJsonSchema[None] = None

    @field_validator("ttl_seconds", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:  # omitted is fine (the default is not validated); null is not
            raise ValueError("must be an integer; omit it for a key that never expires")
        return value


class CacheEntry(Closed):
    key: str
    value: str
    ttl_seconds: Annotated[int, Field(ge=0)] | None


# -- messaging ---------------------------------------------------------------------------------


class PublishResult(Closed):
    queue: str
    message_id: str = Field(json_schema_extra={"format": "uuid"})


class ConsumedMessage(Closed):
    message_id: str | None
    payload: JsonObject
    redelivered: bool


class ConsumeResult(Closed):
    queue: str
    messages: list[ConsumedMessage] = Field(max_length=100)
    rejected: Count


class QueueInfo(Closed):
    queue: str
    message_count: Count
    consumer_count: Count


# -- the Redis cluster -------------------------------------------------------------------------


class SlotRange(Closed):
    start: Slot
    end: Slot


class RedisNode(Closed):
    id: str = Field(pattern=NODE_ID)
    address: RedisAddress
    role: Literal["master", "replica"]
    master_id: Annotated[str, Field(pattern=NODE_ID)] | None
    connected: bool
    slots: list[SlotRange]


class RedisClusterNodes(Closed):
    nodes: list[RedisNode]


class RedisSlotAssignment(Closed):
    start: Slot
    end: Slot
    master: RedisAddress
    replicas: list[RedisAddress]


class SlotCoverage(Closed):
    slots_assigned: SlotCount
    all_covered: bool


class RedisClusterSlots(Closed):
    ranges: list[RedisSlotAssignment]
    coverage: SlotCoverage


class RedisClusterInfo(Closed):
    cluster_state: Literal["ok", "fail"]
    cluster_slots_assigned: SlotCount
    cluster_slots_ok: SlotCount
    cluster_slots_pfail: SlotCount
    cluster_slots_fail: SlotCount
    cluster_known_nodes: Count
    cluster_size: Count
    cluster_current_epoch: Count


class RedisNodeInfo(Closed):
    node: RedisAddress
    role: Literal["master", "replica"]
    redis_version: str
    uptime_seconds: Count
    connected_clients: Count
    used_memory_bytes: Count
    keys: Count
