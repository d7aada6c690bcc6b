"""devstack_client: wire a Python service to Vault-managed credentials and the data stack.

The public API is what `__all__` lists; everything else is private and may change.
See docs/client.md for a usage page. Importing it changes nothing process-wide; the memory
measures are opt-in (`tune_process()`, devstack_client.tuning).
"""

from devstack_client.asgi import (
    MetricsMiddleware,
    RequestIdMiddleware,
    current_request_id,
    metrics_endpoint,
    route_template,
)
from devstack_client.client import DevStackClient
from devstack_client.errors import (
    ConfigurationError,
    DependencyError,
    DependencyTimeout,
    DependencyUnavailable,
    DevStackError,
    InvalidInput,
    MessageUnroutable,
    NotFound,
    VaultError,
)
from devstack_client.health import CheckOutcome, HealthChecker, aggregate
from devstack_client.logs import configure_logging, uvicorn_log_config
from devstack_client.metrics import Metrics
from devstack_client.models import (
    BACKENDS,
    Backend,
    CacheEntry,
    CheckResult,
    ClusterInfo,
    ClusterSlots,
    ConsumedMessage,
    ConsumeResult,
    HealthReport,
    Item,
    ItemCreate,
    ItemList,
    NodeInfo,
    PublishResult,
    QueryResult,
    QueueInfo,
    RedisNode,
    SecretValue,
    SecretView,
    SlotAssignment,
    SlotCoverage,
    SlotRange,
)
from devstack_client.ratelimit import RateLimitDecision, RateLimiter, RedisRateLimiter
from devstack_client.redaction import MASK, Redactor, mask_secret_data, redactor
from devstack_client.secretstore import SecretStore
from devstack_client.settings import DEPENDENCIES, ClientSettings, Dependency
from devstack_client.tls import ssl_context
from devstack_client.tuning import tune_process
from devstack_client.usecases import (
    CacheService,
    ClusterService,
    ItemRepository,
    PendingConsume,
    QueueService,
    SecretReader,
)
from devstack_client.vault import VaultClient, VaultSecret, VaultStatus

__all__ = [
    "BACKENDS",
    "DEPENDENCIES",
    "MASK",
    "Backend",
    "CacheEntry",
    "CacheService",
    "CheckOutcome",
    "CheckResult",
    "ClientSettings",
    "ClusterInfo",
    "ClusterService",
    "ClusterSlots",
    "ConfigurationError",
    "ConsumeResult",
    "ConsumedMessage",
    "Dependency",
    "DependencyError",
    "DependencyTimeout",
    "DependencyUnavailable",
    "DevStackClient",
    "DevStackError",
    "HealthChecker",
    "HealthReport",
    "InvalidInput",
    "Item",
    "ItemCreate",
    "ItemList",
    "ItemRepository",
    "MessageUnroutable",
    "Metrics",
    "MetricsMiddleware",
    "NodeInfo",
    "NotFound",
    "PendingConsume",
    "PublishResult",
    "QueryResult",
    "QueueInfo",
    "QueueService",
    "RateLimitDecision",
    "RateLimiter",
    "Redactor",
    "RedisNode",
    "RedisRateLimiter",
    "RequestIdMiddleware",
    "SecretReader",
    "SecretStore",
    "SecretValue",
    "SecretView",
    "SlotAssignment",
    "SlotCoverage",
    "SlotRange",
    "VaultClient",
    "VaultError",
    "VaultSecret",
    "VaultStatus",
    "aggregate",
    "configure_logging",
    "current_request_id",
    "mask_secret_data",
    "metrics_endpoint",
    "redactor",
    "route_template",
    "ssl_context",
    "tune_process",
    "uvicorn_log_config",
]
