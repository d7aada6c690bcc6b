//! Health: one probe per dependency, all run at once, each within `health_timeout`, each through
//! the same client as the feature it stands for. The Vault check makes no call: it reads the
//! client's own state (reachability from its last contact, the token, stale secrets). The
//! aggregate is the worst check; 200 only when every check is healthy.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::Serialize;

use crate::problems::{ApiError, Dependency};
use crate::state::Stack;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Healthy,
    Degraded,
    Unhealthy,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Healthy => "healthy",
            Status::Degraded => "degraded",
            Status::Unhealthy => "unhealthy",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    pub status: Status,
    pub latency_ms: f64,
    pub error: Option<&'static str>,
    #[serde(skip)]
    pub reason: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct HealthReport {
    pub status: Status,
    pub checks: BTreeMap<&'static str, CheckResult>,
}

impl HealthReport {
    pub fn http_status(&self) -> u16 {
        if self.status == Status::Healthy {
            200
        } else {
            503
        }
    }
}

/// What a probe found: a status, the contract's error word, a reason for logs.
pub struct Outcome {
    pub status: Status,
    pub error: Option<&'static str>,
    pub reason: Option<String>,
}

impl Outcome {
    fn healthy() -> Self {
        Outcome {
            status: Status::Healthy,
            error: None,
            reason: None,
        }
    }

    fn from_error(err: ApiError) -> Self {
        let error = match err {
            ApiError::Timeout { .. } => "timeout",
            _ => "unavailable",
        };
        Outcome {
            status: Status::Unhealthy,
            error: Some(error),
            reason: Some(err.to_string()),
        }
    }
}

/// The Vault check, from the client's own state (pure, so tests can pin it down).
pub fn vault_outcome(
    reachable: bool,
    authenticated: bool,
    last_error: Option<&str>,
    cached: usize,
    stale: usize,
    dependencies: usize,
) -> Outcome {
    if !reachable {
        if cached >= dependencies {
            // Still serving: every secret comes from the cache (the contract's "degraded").
            return Outcome {
                status: Status::Degraded,
                error: Some("unavailable"),
                reason: Some("unreachable; serving cached credentials".into()),
            };
        }
        let sealed = last_error.is_some_and(|e| e.contains("sealed"));
        return Outcome {
            status: Status::Unhealthy,
            error: Some(if sealed { "not_ready" } else { "unavailable" }),
            reason: Some("unreachable".into()),
        };
    }
    if !authenticated {
        return Outcome {
            status: Status::Unhealthy,
            error: Some("unavailable"),
            reason: Some("no valid token".into()),
        };
    }
    if stale > 0 {
        return Outcome {
            status: Status::Degraded,
            error: Some("unavailable"),
            reason: Some("stale secrets".into()),
        };
    }
    Outcome::healthy()
}

async fn probe(stack: &Stack, dependency: Dependency) -> Outcome {
    let result = match dependency {
        Dependency::Vault => {
            let status = stack.vault.status();
            let states = stack.secrets.states();
            let stale = states.iter().filter(|s| s.stale).count();
            return vault_outcome(
                status.reachable,
                status.authenticated,
                status.last_error.as_deref(),
                states.len(),
                stale,
                crate::config::DEPENDENCIES.len(),
            );
        }
        Dependency::Postgres => stack.postgres.health().await,
        Dependency::Mysql => stack.mysql.health().await,
        Dependency::Mongodb => stack.mongo.health().await,
        Dependency::Redis => match stack.redis.health().await {
            Ok(None) => Ok(()),
            Ok(Some(reason)) => {
                return Outcome {
                    status: Status::Unhealthy,
                    error: Some("not_ready"),
                    reason: Some(reason),
                }
            }
            Err(err) => Err(err),
        },
        Dependency::Rabbitmq => stack.rabbit.health().await,
    };
    match result {
        Ok(()) => Outcome::healthy(),
        Err(err) => Outcome::from_error(err),
    }
}

async fn check_one(stack: &Stack, dependency: Dependency) -> CheckResult {
    let started = Instant::now();
    let timeout = stack.settings.health_timeout;
    let outcome = match tokio::time::timeout(timeout, probe(stack, dependency)).await {
        Ok(outcome) => outcome,
        Err(_) => Outcome {
            status: Status::Unhealthy,
            error: Some("timeout"),
            reason: Some(format!("timed out after {}s", timeout.as_secs_f64())),
        },
    };
    let elapsed = started.elapsed().as_secs_f64();
    stack
        .metrics
        .record_health(dependency.name(), outcome.status.name(), elapsed);
    CheckResult {
        status: outcome.status,
        latency_ms: (elapsed * 1_000_000.0).round() / 1000.0,
        error: if outcome.status == Status::Healthy {
            None
        } else {
            outcome.error.or(Some("unavailable"))
        },
        reason: outcome.reason,
    }
}

/// Every probe at once (or those named); never fails.
pub async fn check(stack: &Stack, only: Option<Dependency>) -> HealthReport {
    let selected: Vec<Dependency> = match only {
        Some(one) => vec![one],
        None => Dependency::ALL.to_vec(),
    };
    let results =
        futures_util::future::join_all(selected.iter().map(|d| check_one(stack, *d))).await;
    let mut checks = BTreeMap::new();
    for (dependency, result) in selected.into_iter().zip(results) {
        if result.status != Status::Healthy {
            tracing::warn!(dependency = %dependency, status = result.status.name(), reason = result.reason.as_deref().unwrap_or(""), "health check not healthy");
        }
        checks.insert(dependency.name(), result);
    }
    let status = checks
        .values()
        .map(|c| c.status)
        .max()
        .unwrap_or(Status::Healthy);
    HealthReport { status, checks }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vault_down_with_every_secret_cached_is_degraded() {
        let o = vault_outcome(false, true, Some("connection refused"), 5, 5, 5);
        assert_eq!((o.status, o.error), (Status::Degraded, Some("unavailable")));
        let o = vault_outcome(false, true, Some("503 sealed or not ready"), 2, 0, 5);
        assert_eq!((o.status, o.error), (Status::Unhealthy, Some("not_ready")));
        let o = vault_outcome(true, false, None, 5, 0, 5);
        assert_eq!(o.status, Status::Unhealthy);
        let o = vault_outcome(true, true, None, 5, 1, 5);
        assert_eq!(o.status, Status::Degraded);
        let o = vault_outcome(true, true, None, 5, 0, 5);
        assert_eq!((o.status, o.error), (Status::Healthy, None));
    }

    #[test]
    fn the_aggregate_is_the_worst() {
        assert!(Status::Unhealthy > Status::Degraded && Status::Degraded > Status::Healthy);
    }
}
