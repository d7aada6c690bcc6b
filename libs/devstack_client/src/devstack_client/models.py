"""The typed results (and inputs) of the use cases, shaped as openapi/devstack.yaml's schemas.

A web adapter returns `model.model_dump(mode="json")` as the response body. Fields marked
`exclude=True` are for Python callers (logs, tests) and never serialised.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from devstack_client.jsonrules import LONE_SURROGATE, encodable

Backend = Literal["postgres", "mysql", "mongodb"]
BACKENDS: tuple[Backend, ...] = ("postgres", "mysql", "mongodb")
Status = Literal["healthy", "degraded", "unhealthy"]
CheckError = Literal["unavailable", "timeout", "not_ready"]
MAX_QUANTITY = 2**31 - 1


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# -- secrets (VaultSecret, VaultSecretValue) ---------------------------------------------------


class SecretView(_Model):
    """A service's secret with secret-looking values masked."""

    service: str
    path: str
    version: int
    data: dict[str, str]
    masked_keys: list[str]


class SecretValue(_Model):
    """One key of a service's secret, masked when secret-looking."""

    service: str
    key: str
    value: str
    masked: bool


# -- databases (DatabaseQueryResult, ItemCreate, Item, ItemList) --------------------------------


class QueryResult(_Model):
    """A database's version and clock, read through the pool."""

    database: Backend
    server_version: str
    server_time: dt.datetime


class ItemCreate(_Model):
    """A new item: a name (1-100 characters) and a quantity."""

    name: str = Field(min_length=1, max_length=100)
    quantity: int = Field(default=0, ge=0, le=MAX_QUANTITY)

    @field_validator("name")
    @classmethod
    def _encodable(cls, value: str) -> str:
        if not encodable(value):
            raise ValueError(LONE_SURROGATE)
        return value


class Item(_Model):
    """An item as stored."""

    id: str
    name: str
    quantity: int
    created_at: dt.datetime


class ItemList(_Model):
    """Items, newest first."""

    items: list[Item]


# -- cache (CacheEntry) -----------------------------------------------------------------------


class CacheEntry(_Model):
    """A cached value and its remaining time to live (None: no expiry)."""

    key: str
    value: str
    ttl_seconds: int | None


# -- messaging (PublishResult, ConsumeResult, QueueInfo) --------------------------------------


class PublishResult(_Model):
    """A published message's id."""

    queue: str
    message_id: str


class ConsumedMessage(_Model):
    """A message taken from a queue."""

    message_id: str | None
    payload: dict[str, Any]
    redelivered: bool


class ConsumeResult(_Model):
    """The messages taken, and how many were rejected as undeliverable."""

    queue: str
    messages: list[ConsumedMessage]
    rejected: int


class QueueInfo(_Model):
    """A queue's message and consumer counts."""

    queue: str
    message_count: int
    consumer_count: int


# -- Redis cluster -------------------------------------------------------------------------------


class SlotRange(_Model):
    """A range of hash slots."""

    start: int
    end: int


class RedisNode(_Model):
    """A node of the Redis Cluster, as CLUSTER NODES lists it."""

    id: str
    address: str
    role: Literal["master", "replica"]
    master_id: str | None
    connected: bool
    slots: list[SlotRange]


class SlotAssignment(_Model):
    """A slot range, its master and its replicas."""

    start: int
    end: int
    master: str
    replicas: list[str]


class SlotCoverage(_Model):
    """How many of the 16384 slots are assigned."""

    slots_assigned: int
    all_covered: bool


class ClusterSlots(_Model):
    """Every slot range and the coverage."""

    ranges: list[SlotAssignment]
    coverage: SlotCoverage


class ClusterInfo(_Model):
    """CLUSTER INFO's state and counters."""

    cluster_state: str
    cluster_slots_assigned: int
    cluster_slots_ok: int
    cluster_slots_pfail: int
    cluster_slots_fail: int
    cluster_known_nodes: int
    cluster_size: int
    cluster_current_epoch: int


class NodeInfo(_Model):
    """INFO of one cluster node."""

    node: str
    role: Literal["master", "replica"]
    redis_version: str
    uptime_seconds: int
    connected_clients: int
    used_memory_bytes: int
    keys: int


# -- health (HealthReport, HealthCheck) ---------------------------------------------------------


class CheckResult(_Model):
    """One dependency's health check."""

    status: Status
    latency_ms: float
    error: CheckError | None
    reason: str | None = Field(default=None, exclude=True)
    details: dict[str, Any] = Field(default_factory=dict, exclude=True)


class HealthReport(_Model):
    """Every check, and the worst of their statuses."""

    status: Status
    checks: dict[str, CheckResult]
    duration_ms: float = Field(default=0.0, exclude=True)

    @property
    def http_status(self) -> int:
        """200 when healthy, 503 otherwise (degraded included)."""
        return 200 if self.status == "healthy" else 503
