"""One managed client per dependency: built once, rebuilt on new credentials, closed cleanly.

The rules every pool follows are those of `ManagedPool` (`pools/base.py`); each backend has its
module: `postgres`, `mysql`, `mongodb`, `redis`, `rabbitmq`. Each pool also carries its
dependency's health probe (`probe(within)`), through the same pool as the feature it stands for.
"""

from devstack_client.pools.base import (
    AUTH_REFRESH_MAX_AGE,
    REBUILD_RETRY,
    ManagedPool,
    tls_enabled,
)
from devstack_client.pools.mongodb import MongoHandle, MongoPool
from devstack_client.pools.mysql import MySQLPool
from devstack_client.pools.postgres import PostgresPool
from devstack_client.pools.rabbitmq import IDLE_RAW_CHANNELS, RabbitHandle, RabbitPool
from devstack_client.pools.redis import RedisPool

__all__ = [
    "AUTH_REFRESH_MAX_AGE",
    "IDLE_RAW_CHANNELS",
    "REBUILD_RETRY",
    "ManagedPool",
    "MongoHandle",
    "MongoPool",
    "MySQLPool",
    "PostgresPool",
    "RabbitHandle",
    "RabbitPool",
    "RedisPool",
    "tls_enabled",
]
