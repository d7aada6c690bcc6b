"""What both applications do, written once: plain async classes over the managed pools.

Each method validates its arguments (`InvalidInput`), returns a model shaped like the contract's
schema (openapi/devstack.yaml), and raises only the library's exceptions (`NotFound`,
`DependencyUnavailable`, `DependencyTimeout`, ...), so a web adapter maps results and errors to
HTTP without knowing which backend answered. One module per area: `secrets`, `items` (the three
databases), `cache`, `messaging`, `cluster` (the Redis Cluster).
"""

from devstack_client.usecases.cache import MAX_CACHE_TTL, CacheService
from devstack_client.usecases.cluster import ClusterService, parse_cluster_nodes
from devstack_client.usecases.items import (
    DEFAULT_PAGE,
    MAX_PAGE,
    ItemRepository,
    MongoItems,
    MySQLItems,
    PostgresItems,
)
from devstack_client.usecases.messaging import (
    DEFAULT_CONSUME,
    MAX_CONSUME,
    PendingConsume,
    QueueService,
)
from devstack_client.usecases.secrets import SecretReader

__all__ = [
    "DEFAULT_CONSUME",
    "DEFAULT_PAGE",
    "MAX_CACHE_TTL",
    "MAX_CONSUME",
    "MAX_PAGE",
    "CacheService",
    "ClusterService",
    "ItemRepository",
    "MongoItems",
    "MySQLItems",
    "PendingConsume",
    "PostgresItems",
    "QueueService",
    "SecretReader",
    "parse_cluster_nodes",
]
