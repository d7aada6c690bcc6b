"""Prometheus metrics of the library, in a registry of their own by default.

One `Metrics` instance per application (or per test) holds every collector, registered in the
`CollectorRegistry` it is given, or a fresh one, so two clients in one process never collide on
the global registry. `render()` gives the exposition text and its content type.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Literal, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric

HealthValue = Literal["healthy", "degraded", "unhealthy"]
HEALTH_VALUE: dict[str, float] = {"healthy": 1.0, "degraded": 0.5, "unhealthy": 0.0}

PoolStats = Callable[[], dict[str, int]]


# The Prometheus text format the contract names (0.0.4, read by every Prometheus);
# prometheus_client's CONTENT_TYPE_LATEST now announces version=1.0.0.
TEXT_FORMAT = "text/plain; version=0.0.4; charset=utf-8"


class _PoolCollector:
    """Pool sizes read at scrape time from each registered pool's stats function."""

    def __init__(self) -> None:
        self.pools: dict[str, PoolStats] = {}

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(
            "devstack_pool_connections",
            "Connections (or channels) held by each pool, by state",
            labels=["pool", "state"],
        )
        for name, stats in sorted(self.pools.items()):
            try:
                values = stats()
            except Exception:  # noqa: S112 (a scrape must never fail because one pool is closing)
                continue
            for state, value in sorted(values.items()):
                family.add_metric([name, state], float(value))
        yield family

    def describe(self) -> Iterable[Metric]:
        return []


Labelled = TypeVar("Labelled", Counter, Gauge, Histogram)


class Metrics:
    """The Prometheus metrics of one application (its own registry): HTTP, pools, Vault, health."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.http_requests = Counter(
            "devstack_http_requests",
            "HTTP requests, by route template",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_duration = Histogram(
            "devstack_http_request_duration_seconds",
            "HTTP request latency, by route template",
            ["method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.http_in_flight = Gauge(
            "devstack_http_requests_in_flight",
            "HTTP requests being served, by route template",
            ["method", "route"],
            registry=r,
        )
        self.dependency_health = Gauge(
            "devstack_dependency_health",
            "Last health of each dependency: 1 healthy, 0.5 degraded, 0 unhealthy",
            ["dependency"],
            registry=r,
        )
        self.dependency_check = Histogram(
            "devstack_dependency_check_duration_seconds",
            "Latency of each dependency's health probe",
            ["dependency"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        self.vault_requests = Counter(
            "devstack_vault_requests",
            "Requests sent to Vault, by operation",
            ["operation"],
            registry=r,
        )
        self.vault_logins = Counter(
            "devstack_vault_logins", "AppRole logins, by result", ["result"], registry=r
        )
        self.vault_renewals = Counter(
            "devstack_vault_renewals", "Token renewals, by result", ["result"], registry=r
        )
        self.vault_failures = Counter(
            "devstack_vault_failures",
            "Vault calls that failed (unreachable or an error status), by operation",
            ["operation"],
            registry=r,
        )
        self.vault_token_ttl = Gauge(
            "devstack_vault_token_ttl_seconds",
            "Seconds left before the current Vault token expires (0: none)",
            registry=r,
        )
        self.secret_cache = Counter(
            "devstack_secret_cache_requests",
            "Secret reads served by the cache, by result (hit, miss, stale)",
            ["result"],
            registry=r,
        )
        self.secret_changes = Counter(
            "devstack_secret_version_changes",
            "New versions of a secret seen by the refresher",
            ["path"],
            registry=r,
        )
        self.pool_rebuilds = Counter(
            "devstack_pool_rebuilds",
            "Pools rebuilt, by pool and reason (credentials, recovery)",
            ["pool", "reason"],
            registry=r,
        )
        self._pools = _PoolCollector()
        r.register(self._pools)
        self._children: dict[tuple[object, tuple[str, ...]], object] = {}

    def child(self, metric: Labelled, *labels: str) -> Labelled:
        """`metric.labels(*labels)`, looked up once per label set. prometheus_client checks the
        arguments and takes a lock on every `labels()` (1.5 microseconds), and each HTTP request
        looks up four children; a child never changes for its label set. This keeps a reference to
        each child prometheus_client keeps anyway: no label set it does not hold."""
        key = (metric, labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found  # type: ignore[return-value]

    def register_pool(self, name: str, stats: PoolStats) -> None:
        """Report `stats()` of a pool under `name` at each scrape."""
        self._pools.pools[name] = stats

    def unregister_pool(self, name: str) -> None:
        """Stop reporting the pool `name`."""
        self._pools.pools.pop(name, None)

    def bind_token_ttl(self, remaining: Callable[[], float | None]) -> None:
        """Report the Vault token's remaining lifetime, read at each scrape."""
        self.vault_token_ttl.set_function(lambda: max(0.0, remaining() or 0.0))

    def record_health(self, dependency: str, status: str, seconds: float) -> None:
        """Record one health check of `dependency`: its status and duration."""
        self.dependency_health.labels(dependency).set(HEALTH_VALUE.get(status, 0.0))
        self.dependency_check.labels(dependency).observe(seconds)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type, for a `/metrics` route."""
        return generate_latest(self.registry), TEXT_FORMAT
