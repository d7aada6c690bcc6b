//! Health: one probe per dependency, all run at once, each within `health_timeout`, each through
//! the same client as the feature it stands for. The Vault check asks Vault's health endpoint
//! (no token, not audited; concurrent checks share one request), so a Vault that died is
//! reported by the very next check, then reads the client's own state (the token, stale
//! secrets). The aggregate is the worst check; 200 only when every check is healthy.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::Serialize;

use crate::problems::{ApiError, Dependency};
use crate::state::Stack;
use crate::vault::VaultProbe;

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

/// The Vault check, from what Vault's health endpoint said just now and the client's own state
/// (pure, so tests can pin it down). Vault not answering is `degraded` while every
/// dependency's secret is served from the cache, else `unhealthy`.
pub fn vault_outcome(
    probe: VaultProbe,
    authenticated: bool,
    cached: usize,
    stale: usize,
    dependencies: usize,
) -> Outcome {
    let all_cached = cached >= dependencies;
    let (error, reason) = match probe {
        VaultProbe::Up if !authenticated => ("unavailable", "no valid token"),
        VaultProbe::Up if stale > 0 => {
            return Outcome {
                status: Status::Degraded,
                error: Some("unavailable"),
                reason: Some("stale secrets".into()),
            }
        }
        VaultProbe::Up => return Outcome::healthy(),
        VaultProbe::Timeout => ("timeout", "no answer within the health timeout"),
        VaultProbe::NotReady if !all_cached => ("not_ready", "sealed or not initialised"),
        VaultProbe::NotReady | VaultProbe::Unreachable => ("unavailable", "unreachable"),
    };
    if all_cached {
        // Still serving: every secret comes from the cache (the contract's "degraded").
        return Outcome {
            status: Status::Degraded,
            error: Some(error),
            reason: Some(format!("{reason}; serving cached credentials")),
        };
    }
    Outcome {
        status: Status::Unhealthy,
        error: Some(error),
        reason: Some(reason.into()),
    }
}

async fn probe(stack: &Stack, dependency: Dependency) -> Outcome {
    let result = match dependency {
        Dependency::Vault => {
            let probe = stack.vault.probe().await;
            let status = stack.vault.status();
            let states = stack.secrets.states();
            let stale = states.iter().filter(|s| s.stale).count();
            return vault_outcome(
                probe,
                status.authenticated,
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
    // The Vault probe is bounded by the health timeout itself (a timeout there can still be
    // `degraded`).
    let bounded = if dependency == Dependency::Vault {
        Ok(probe(stack, dependency).await)
    } else {
        tokio::time::timeout(timeout, probe(stack, dependency)).await
    };
    let outcome = match bounded {
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
        use VaultProbe::*;
        let o = vault_outcome(Unreachable, true, 5, 5, 5);
        assert_eq!((o.status, o.error), (Status::Degraded, Some("unavailable")));
        let o = vault_outcome(Timeout, true, 5, 0, 5);
        assert_eq!((o.status, o.error), (Status::Degraded, Some("timeout")));
        let o = vault_outcome(NotReady, true, 5, 0, 5);
        assert_eq!((o.status, o.error), (Status::Degraded, Some("unavailable")));
        let o = vault_outcome(NotReady, true, 2, 0, 5);
        assert_eq!((o.status, o.error), (Status::Unhealthy, Some("not_ready")));
        let o = vault_outcome(Unreachable, true, 2, 0, 5);
        assert_eq!(
            (o.status, o.error),
            (Status::Unhealthy, Some("unavailable"))
        );
        let o = vault_outcome(Up, false, 5, 0, 5);
        assert_eq!((o.status, o.error), (Status::Degraded, Some("unavailable")));
        let o = vault_outcome(Up, false, 4, 0, 5);
        assert_eq!(o.status, Status::Unhealthy);
        let o = vault_outcome(Up, true, 5, 1, 5);
        assert_eq!(o.status, Status::Degraded);
        let o = vault_outcome(Up, true, 5, 0, 5);
        assert_eq!((o.status, o.error), (Status::Healthy, None));
    }

    #[test]
    fn the_aggregate_is_the_worst() {
        assert!(Status::Unhealthy > Status::Degraded && Status::Degraded > Status::Healthy);
    }
}
