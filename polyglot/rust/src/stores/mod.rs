//! One managed client per dependency, each built from its Vault secret and rebuilt when the
//! secret's version changes; the use cases of the contract on top of them.
//!
//! [`Managed`] holds the current client behind an `Arc`: an operation clones the `Arc`, so a
//! client replaced by a rebuild lives until the operations already running on it finish (the
//! grace period the Python library waits for, given by ownership here). [`bounded`] gives every
//! operation the `operation_timeout` and turns an elapsed timer into a 504.

use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::Serialize;

use crate::problems::{ApiError, Dependency};
use crate::secrets::{SecretError, SecretStore};
use crate::vault::KvSecret;

pub mod mongo;
pub mod mysql;
pub mod postgres;
pub mod rabbit;
pub mod redis;

/// A failed rebuild is retried at most once a second.
const REBUILD_RETRY: Duration = Duration::from_secs(1);
/// An authentication failure re-reads the secret unless it was read in the last 2 s.
const AUTH_REFRESH_MAX_AGE: Duration = Duration::from_secs(2);

pub struct Managed<C> {
    pub dependency: Dependency,
    path: String,
    current: RwLock<Option<(Arc<C>, u64)>>,
    build_lock: tokio::sync::Mutex<()>,
    next_rebuild: Mutex<Instant>,
    last_auth_refresh: Mutex<Option<Instant>>,
}

fn secret_error(dependency: Dependency, err: SecretError) -> ApiError {
    match err {
        SecretError::Vault(v) => v.into(),
        SecretError::NotFound(_) => ApiError::unavailable(dependency, "its secret does not exist"),
    }
}

impl<C: Send + Sync + 'static> Managed<C> {
    pub fn new(dependency: Dependency) -> Self {
        Managed {
            dependency,
            path: dependency.name().to_owned(),
            current: RwLock::new(None),
            build_lock: tokio::sync::Mutex::new(()),
            next_rebuild: Mutex::new(Instant::now()),
            last_auth_refresh: Mutex::new(None),
        }
    }

    pub fn secret_path(&self) -> &str {
        &self.path
    }

    fn usable(&self, secrets: &SecretStore) -> Option<Arc<C>> {
        let current = self
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (client, version) = current.as_ref()?;
        let wanted = secrets.version(&self.path);
        let rebuild_due = *self
            .next_rebuild
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            <= Instant::now();
        if wanted.is_none_or(|w| w == *version) || !rebuild_due {
            Some(client.clone())
        } else {
            None
        }
    }

    /// The current client, built (or rebuilt for a new secret version) when needed.
    pub async fn client<F, Fut>(&self, secrets: &SecretStore, build: F) -> Result<Arc<C>, ApiError>
    where
        F: FnOnce(Arc<KvSecret>) -> Fut,
        Fut: Future<Output = Result<C, ApiError>>,
    {
        if let Some(client) = self.usable(secrets) {
            return Ok(client);
        }
        let _guard = self.build_lock.lock().await;
        if let Some(client) = self.usable(secrets) {
            return Ok(client);
        }
        let secret = secrets
            .get(&self.path)
            .await
            .map_err(|e| secret_error(self.dependency, e))?;
        let previous = self
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        match build(secret.clone()).await {
            Ok(client) => {
                let client = Arc::new(client);
                *self
                    .current
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) =
                    Some((client.clone(), secret.version));
                if previous.is_some() {
                    tracing::info!(dependency = %self.dependency, version = secret.version, "pool rebuilt with new credentials");
                }
                Ok(client)
            }
            Err(err) => match previous {
                Some((old, _)) => {
                    *self
                        .next_rebuild
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) =
                        Instant::now() + REBUILD_RETRY;
                    tracing::warn!(dependency = %self.dependency, error = %err, "rebuilding a pool failed; keeping the old one");
                    Ok(old)
                }
                None => Err(err),
            },
        }
    }

    /// Drop the current client (its connections are broken); the next use builds a new one.
    pub fn discard(&self) {
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }

    pub fn built(&self) -> bool {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some()
    }

    /// The server refused our credentials: re-read the secret (at most every 2 s), in the
    /// background.
    pub fn on_auth_error(&self, secrets: &Arc<SecretStore>) {
        let mut last = self
            .last_auth_refresh
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.is_some_and(|t| t.elapsed() < AUTH_REFRESH_MAX_AGE) {
            return;
        }
        *last = Some(Instant::now());
        tracing::warn!(dependency = %self.dependency, "authentication failed; re-reading the secret");
        let secrets = secrets.clone();
        let path = self.path.clone();
        tokio::spawn(async move {
            let _ = secrets.refresh(&path).await;
        });
    }
}

/// `fut` within `timeout`; an elapsed timer is a 504 naming the dependency.
pub async fn bounded<T>(
    dependency: Dependency,
    what: &str,
    timeout: Duration,
    fut: impl Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(result) => result,
        Err(_) => Err(ApiError::timeout(
            dependency,
            format!("{what} timed out after {}s", timeout.as_secs_f64()),
        )),
    }
}

// -- the contract's shapes --------------------------------------------------------------------

pub const MAX_QUANTITY: i64 = 2_147_483_647;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Item {
    pub id: String,
    pub name: String,
    pub quantity: i64,
    pub created_at: String,
}

#[derive(Debug, Serialize)]
pub struct ItemList {
    pub items: Vec<Item>,
}

#[derive(Debug, Serialize)]
pub struct QueryResult {
    pub database: &'static str,
    pub server_version: String,
    pub server_time: String,
}

/// UTC now at millisecond precision: what every backend stores unchanged.
pub fn now_millis() -> DateTime<Utc> {
    let now = Utc::now();
    Utc.timestamp_millis_opt(now.timestamp_millis())
        .single()
        .unwrap_or(now)
}

/// A UTC instant as the Python apps (pydantic) write it: `2026-01-02T03:04:05.123000Z`, or
/// without a fraction when it is zero.
pub fn iso(t: &DateTime<Utc>) -> String {
    if t.timestamp_subsec_micros() == 0 {
        t.to_rfc3339_opts(SecondsFormat::Secs, true)
    } else {
        t.to_rfc3339_opts(SecondsFormat::Micros, true)
    }
}

pub fn from_micros(micros: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(micros).single().unwrap_or_default()
}

/// An item id that is a UUID, in its canonical form; anything else does not exist.
pub fn uuid_or_404(item_id: &str, backend: &str) -> Result<String, ApiError> {
    uuid::Uuid::parse_str(item_id)
        .map(|u| u.hyphenated().to_string())
        .map_err(|_| ApiError::NotFound(format!("no {backend} item has this id")))
}

/// Pydantic's view of a limit: 1 to 100.
pub fn check_limit(limit: i64) -> Result<(), ApiError> {
    if (1..=100).contains(&limit) {
        Ok(())
    } else {
        Err(ApiError::InvalidValue(
            "limit must be between 1 and 100".into(),
        ))
    }
}

/// What a database store offers (the five item operations and the query).
pub enum Backend {
    Postgres,
    Mysql,
    Mongodb,
}

impl Backend {
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Postgres => "postgres",
            Backend::Mysql => "mysql",
            Backend::Mongodb => "mongodb",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_written_as_pydantic_writes_them() {
        let t = Utc
            .with_ymd_and_hms(2026, 1, 2, 3, 4, 5)
            .single()
            .expect("valid");
        assert_eq!(iso(&t), "2026-01-02T03:04:05Z");
        let t = from_micros(t.timestamp_micros() + 123_000);
        assert_eq!(iso(&t), "2026-01-02T03:04:05.123000Z");
        assert_eq!(now_millis().timestamp_subsec_micros() % 1000, 0);
    }

    #[test]
    fn item_ids_are_canonical_uuids() {
        let id = uuid_or_404("0E8F2A3C-1B2D-4E5F-8A9B-0C1D2E3F4A5B", "postgres").expect("uuid");
        assert_eq!(id, "0e8f2a3c-1b2d-4e5f-8a9b-0c1d2e3f4a5b");
        assert!(matches!(
            uuid_or_404("parity-missing", "mysql"),
            Err(ApiError::NotFound(_))
        ));
    }
}

/// What every store needs: settings, the secret cache, the CA.
#[derive(Clone)]
pub struct Context {
    pub settings: Arc<crate::config::Settings>,
    pub secrets: Arc<SecretStore>,
    pub trust: crate::tls::Trust,
}
