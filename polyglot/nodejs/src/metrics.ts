/**
 * Prometheus metrics in a registry of their own (never prom-client's global one), with the names
 * the Python apps export: requests and latency by route template, dependency health, Vault traffic.
 */
import { Counter, Gauge, Histogram, Registry } from "prom-client";

/** The exposition format the contract names (0.0.4). */
export const TEXT_FORMAT = "text/plain; version=0.0.4; charset=utf-8";
export const UNMATCHED = "<unmatched>";

const HEALTH_VALUE: Record<string, number> = { healthy: 1, degraded: 0.5, unhealthy: 0 };

export class Metrics {
  readonly registry = new Registry();
  readonly httpRequests = new Counter({
    name: "devstack_http_requests_total",
    help: "HTTP requests, by route template",
    labelNames: ["method", "route", "status"] as const,
    registers: [this.registry],
  });
  readonly httpDuration = new Histogram({
    name: "devstack_http_request_duration_seconds",
    help: "HTTP request latency, by route template",
    labelNames: ["method", "route"] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly httpInFlight = new Gauge({
    name: "devstack_http_requests_in_flight",
    help: "HTTP requests being served, by route template",
    labelNames: ["method", "route"] as const,
    registers: [this.registry],
  });
  readonly dependencyHealth = new Gauge({
    name: "devstack_dependency_health",
    help: "Last health of each dependency: 1 healthy, 0.5 degraded, 0 unhealthy",
    labelNames: ["dependency"] as const,
    registers: [this.registry],
  });
  readonly dependencyCheck = new Histogram({
    name: "devstack_dependency_check_duration_seconds",
    help: "Latency of each dependency's health probe",
    labelNames: ["dependency"] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });
  readonly vaultRequests = new Counter({
    name: "devstack_vault_requests_total",
    help: "Requests sent to Vault, by operation",
    labelNames: ["operation"] as const,
    registers: [this.registry],
  });
  readonly vaultLogins = new Counter({
    name: "devstack_vault_logins_total",
    help: "AppRole logins, by result",
    labelNames: ["result"] as const,
    registers: [this.registry],
  });
  readonly vaultRenewals = new Counter({
    name: "devstack_vault_renewals_total",
    help: "Token renewals, by result",
    labelNames: ["result"] as const,
    registers: [this.registry],
  });
  readonly vaultFailures = new Counter({
    name: "devstack_vault_failures_total",
    help: "Vault calls that failed (unreachable or an error status), by operation",
    labelNames: ["operation"] as const,
    registers: [this.registry],
  });
  readonly secretCache = new Counter({
    name: "devstack_secret_cache_requests_total",
    help: "Secret reads served by the cache, by result (hit, miss, stale)",
    labelNames: ["result"] as const,
    registers: [this.registry],
  });
  readonly secretChanges = new Counter({
    name: "devstack_secret_version_changes_total",
    help: "New versions of a secret seen by the refresher",
    labelNames: ["path"] as const,
    registers: [this.registry],
  });
  readonly poolRebuilds = new Counter({
    name: "devstack_pool_rebuilds_total",
    help: "Pools rebuilt, by pool and reason (credentials, recovery)",
    labelNames: ["pool", "reason"] as const,
    registers: [this.registry],
  });

  recordHealth(dependency: string, status: string, seconds: number): void {
    this.dependencyHealth.set({ dependency }, HEALTH_VALUE[status] ?? 0);
    this.dependencyCheck.observe({ dependency }, seconds);
  }

  async render(): Promise<string> {
    return this.registry.metrics();
  }
}
