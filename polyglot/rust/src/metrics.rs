//! Prometheus metrics, in a registry of this process's own, with the Python library's names
//! (docs/client.md): HTTP requests by route template, Vault traffic, the secret cache, health.

use prometheus::{
    Encoder, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// The Prometheus text format the contract names.
pub const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub http_in_flight: IntGaugeVec,
    pub dependency_health: GaugeVec,
    pub dependency_check: HistogramVec,
    pub vault_requests: IntCounterVec,
    pub vault_logins: IntCounterVec,
    pub vault_renewals: IntCounterVec,
    pub vault_failures: IntCounterVec,
    pub vault_token_ttl: Gauge,
    pub secret_cache: IntCounterVec,
    pub secret_changes: IntCounterVec,
    pub pool_rebuilds: IntCounterVec,
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let metric = IntCounterVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    // Names are unique by construction: registering cannot fail but for a programming error.
    let _ = registry.register(Box::new(metric.clone()));
    metric
}

impl Metrics {
    pub fn new() -> Self {
        let r = Registry::new();
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "devstack_http_request_duration_seconds",
                "HTTP request latency, by route template",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["method", "route"],
        )
        .unwrap_or_else(|e| panic!("histogram: {e}"));
        let _ = r.register(Box::new(http_duration.clone()));
        let http_in_flight = IntGaugeVec::new(
            Opts::new(
                "devstack_http_requests_in_flight",
                "HTTP requests being served, by route template",
            ),
            &["method", "route"],
        )
        .unwrap_or_else(|e| panic!("gauge: {e}"));
        let _ = r.register(Box::new(http_in_flight.clone()));
        let dependency_health = GaugeVec::new(
            Opts::new(
                "devstack_dependency_health",
                "Last health of each dependency: 1 healthy, 0.5 degraded, 0 unhealthy",
            ),
            &["dependency"],
        )
        .unwrap_or_else(|e| panic!("gauge: {e}"));
        let _ = r.register(Box::new(dependency_health.clone()));
        let dependency_check = HistogramVec::new(
            HistogramOpts::new(
                "devstack_dependency_check_duration_seconds",
                "Latency of each dependency's health probe",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["dependency"],
        )
        .unwrap_or_else(|e| panic!("histogram: {e}"));
        let _ = r.register(Box::new(dependency_check.clone()));
        let vault_token_ttl = Gauge::new(
            "devstack_vault_token_ttl_seconds",
            "Seconds left before the current Vault token expires (0: none)",
        )
        .unwrap_or_else(|e| panic!("gauge: {e}"));
        let _ = r.register(Box::new(vault_token_ttl.clone()));
        Metrics {
            http_requests: counter(
                &r,
                "devstack_http_requests_total",
                "HTTP requests, by route template",
                &["method", "route", "status"],
            ),
            http_duration,
            http_in_flight,
            dependency_health,
            dependency_check,
            vault_requests: counter(
                &r,
                "devstack_vault_requests_total",
                "Requests sent to Vault, by operation",
                &["operation"],
            ),
            vault_logins: counter(
                &r,
                "devstack_vault_logins_total",
                "AppRole logins, by result",
                &["result"],
            ),
            vault_renewals: counter(
                &r,
                "devstack_vault_renewals_total",
                "Token renewals, by result",
                &["result"],
            ),
            vault_failures: counter(
                &r,
                "devstack_vault_failures_total",
                "Vault calls that failed (unreachable or an error status), by operation",
                &["operation"],
            ),
            vault_token_ttl,
            secret_cache: counter(
                &r,
                "devstack_secret_cache_requests_total",
                "Secret reads served by the cache, by result (hit, miss, stale)",
                &["result"],
            ),
            secret_changes: counter(
                &r,
                "devstack_secret_version_changes_total",
                "New versions of a secret seen by the refresher",
                &["path"],
            ),
            pool_rebuilds: counter(
                &r,
                "devstack_pool_rebuilds_total",
                "Pools rebuilt, by pool and reason (credentials, recovery)",
                &["pool", "reason"],
            ),
            registry: r,
        }
    }

    pub fn record_health(&self, dependency: &str, status: &str, seconds: f64) {
        let value = match status {
            "healthy" => 1.0,
            "degraded" => 0.5,
            _ => 0.0,
        };
        self.dependency_health
            .with_label_values(&[dependency])
            .set(value);
        self.dependency_check
            .with_label_values(&[dependency])
            .observe(seconds);
    }

    /// The exposition text.
    pub fn render(&self) -> Vec<u8> {
        let mut buffer = Vec::with_capacity(8192);
        let families = self.registry.gather();
        if TextEncoder::new().encode(&families, &mut buffer).is_err() {
            buffer.clear();
        }
        buffer
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_with_total_and_route_labels() {
        let m = Metrics::new();
        m.http_requests
            .with_label_values(&["GET", "/examples/cache/{key}", "404"])
            .inc();
        m.http_duration
            .with_label_values(&["GET", "/examples/cache/{key}"])
            .observe(0.002);
        let text = String::from_utf8(m.render()).expect("utf-8");
        assert!(text.contains("# TYPE devstack_http_requests_total counter"));
        assert!(text.contains("# TYPE devstack_http_request_duration_seconds histogram"));
        assert!(text.contains("route=\"/examples/cache/{key}\""));
    }
}
