//! KV secrets cached with a TTL, refreshed in the background, kept through a Vault outage.
//!
//! - `get(path)` answers from the cache while the value is younger than `ttl`; otherwise it
//!   reads Vault, one read per path at a time however many callers wait (single flight).
//! - A background task re-reads every cached secret once it is half its TTL old, so at steady
//!   state an API request causes no Vault call.
//! - When Vault cannot be reached, the last good value is served and marked stale (health says
//!   so); the next successful read clears the mark.
//! - Pools compare the version they were built with against [`SecretStore::version`] and rebuild
//!   when a new version appears.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use source::Fetch;

use crate::metrics::Metrics;
use crate::vault::{KvSecret, VaultError};

/// How a store reads a secret: the Vault client in production, a closure in tests.
pub mod source {
    use std::future::Future;
    use std::pin::Pin;

    use crate::vault::{KvSecret, VaultError};

    pub type FetchFuture<'a> =
        Pin<Box<dyn Future<Output = Result<Option<KvSecret>, VaultError>> + Send + 'a>>;

    pub trait Fetch: Send + Sync {
        fn fetch<'a>(&'a self, path: &'a str) -> FetchFuture<'a>;
    }

    impl Fetch for crate::vault::Vault {
        fn fetch<'a>(&'a self, path: &'a str) -> FetchFuture<'a> {
            Box::pin(self.kv_read(path))
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("secret {0:?} does not exist")]
    NotFound(String),
    #[error(transparent)]
    Vault(#[from] VaultError),
}

#[derive(Clone)]
struct Entry {
    secret: Arc<KvSecret>,
    fetched_at: Instant,
    failed: bool,
}

#[derive(Debug, Clone)]
pub struct SecretState {
    pub path: String,
    pub version: u64,
    pub stale: bool,
}

pub struct SecretStore {
    fetcher: Arc<dyn Fetch>,
    ttl: Duration,
    metrics: Metrics,
    entries: RwLock<HashMap<String, Entry>>,
    flights: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl SecretStore {
    pub fn new(fetcher: Arc<dyn Fetch>, ttl: Duration, metrics: Metrics) -> Self {
        SecretStore {
            fetcher,
            ttl,
            metrics,
            entries: RwLock::new(HashMap::new()),
            flights: Mutex::new(HashMap::new()),
        }
    }

    pub async fn get(&self, path: &str) -> Result<Arc<KvSecret>, SecretError> {
        let entry = read(&self.entries).get(path).cloned();
        if let Some(entry) = &entry {
            if entry.fetched_at.elapsed() < self.ttl {
                self.count("hit");
                return Ok(entry.secret.clone());
            }
        }
        match self.refresh(path).await {
            Ok(secret) => {
                self.count("miss");
                Ok(secret)
            }
            Err(SecretError::Vault(err)) => match entry {
                Some(entry) => {
                    self.count("stale");
                    tracing::debug!(path, error = %err, "serving a cached secret");
                    Ok(entry.secret)
                }
                None => Err(SecretError::Vault(err)),
            },
            Err(other) => Err(other),
        }
    }

    /// The cached version of `path`, if any (no Vault call).
    pub fn version(&self, path: &str) -> Option<u64> {
        read(&self.entries).get(path).map(|e| e.secret.version)
    }

    pub fn peek(&self, path: &str) -> Option<Arc<KvSecret>> {
        read(&self.entries).get(path).map(|e| e.secret.clone())
    }

    fn flight(&self, path: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut flights = self
            .flights
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        flights.entry(path.to_owned()).or_default().clone()
    }

    /// Read Vault now, one read per path at a time: a caller that waited for another's read
    /// takes its result.
    pub async fn refresh(&self, path: &str) -> Result<Arc<KvSecret>, SecretError> {
        let asked_at = Instant::now();
        let flight = self.flight(path);
        let _guard = flight.lock().await;
        if let Some(entry) = read(&self.entries).get(path) {
            if entry.fetched_at > asked_at && !entry.failed {
                return Ok(entry.secret.clone());
            }
        }
        match self.fetcher.fetch(path).await {
            Ok(Some(secret)) => Ok(self.store(path, secret)),
            Ok(None) => Err(SecretError::NotFound(path.to_owned())),
            Err(err) => {
                if let Some(entry) = write(&self.entries).get_mut(path) {
                    entry.failed = true;
                }
                Err(SecretError::Vault(err))
            }
        }
    }

    fn store(&self, path: &str, secret: KvSecret) -> Arc<KvSecret> {
        let secret = Arc::new(secret);
        let previous = write(&self.entries).insert(
            path.to_owned(),
            Entry {
                secret: secret.clone(),
                fetched_at: Instant::now(),
                failed: false,
            },
        );
        if let Some(previous) = previous {
            if previous.secret.version != secret.version {
                tracing::info!(
                    path,
                    old_version = previous.secret.version,
                    new_version = secret.version,
                    "secret version changed"
                );
                self.metrics.secret_changes.with_label_values(&[path]).inc();
            }
        }
        secret
    }

    fn count(&self, result: &str) {
        self.metrics.secret_cache.with_label_values(&[result]).inc();
    }

    pub fn states(&self) -> Vec<SecretState> {
        let mut states: Vec<SecretState> = read(&self.entries)
            .iter()
            .map(|(path, e)| SecretState {
                path: path.clone(),
                version: e.secret.version,
                stale: e.failed || e.fetched_at.elapsed() >= self.ttl,
            })
            .collect();
        states.sort_by(|a, b| a.path.cmp(&b.path));
        states
    }

    fn next_due(&self) -> Duration {
        let half = self.ttl / 2;
        let entries = read(&self.entries);
        let due = entries
            .values()
            .map(|e| {
                if e.failed {
                    half.min(Duration::from_secs(1))
                } else {
                    (e.fetched_at + half).saturating_duration_since(Instant::now())
                }
            })
            .min()
            .unwrap_or(half);
        due.max(Duration::from_millis(50))
    }

    /// Re-reads every cached secret at half its TTL, until the process ends.
    pub async fn refresh_loop(self: Arc<Self>) {
        loop {
            tokio::time::sleep(self.next_due()).await;
            let half = self.ttl / 2;
            let due: Vec<String> = read(&self.entries)
                .iter()
                .filter(|(_, e)| e.failed || e.fetched_at.elapsed() >= half)
                .map(|(p, _)| p.clone())
                .collect();
            for path in &due {
                match self.refresh(path).await {
                    Ok(_) => {}
                    Err(SecretError::Vault(err)) => {
                        let mut entries = write(&self.entries);
                        for other in &due {
                            if let Some(entry) = entries.get_mut(other) {
                                entry.failed = true;
                            }
                        }
                        tracing::warn!(error = %err, "secret refresh failed; serving cached values");
                        break;
                    }
                    Err(SecretError::NotFound(_)) => {
                        tracing::warn!(path, "a cached secret was deleted from Vault; keeping it");
                        if let Some(entry) = write(&self.entries).get_mut(path) {
                            entry.fetched_at = Instant::now();
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::source::{Fetch, FetchFuture};
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    struct Fake {
        calls: AtomicU64,
        down: AtomicBool,
        version: AtomicU64,
    }

    impl Fetch for Fake {
        fn fetch<'a>(&'a self, path: &'a str) -> FetchFuture<'a> {
            Box::pin(async move {
                self.calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                if self.down.load(Ordering::SeqCst) {
                    return Err(VaultError::Unreachable {
                        operation: "kv_read",
                        reason: "down".into(),
                    });
                }
                if path == "missing" {
                    return Ok(None);
                }
                let mut data = serde_json::Map::new();
                data.insert("user".into(), "app".into());
                Ok(Some(KvSecret {
                    path: path.to_owned(),
                    data,
                    version: self.version.load(Ordering::SeqCst),
                }))
            })
        }
    }

    fn store(ttl: Duration) -> (Arc<Fake>, Arc<SecretStore>) {
        let fake = Arc::new(Fake {
            calls: AtomicU64::new(0),
            down: AtomicBool::new(false),
            version: AtomicU64::new(1),
        });
        let store = Arc::new(SecretStore::new(fake.clone(), ttl, Metrics::new()));
        (fake, store)
    }

    #[tokio::test]
    async fn hits_the_cache_and_reads_once_for_many_callers() {
        let (fake, store) = store(Duration::from_secs(60));
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let s = store.clone();
            tasks.push(tokio::spawn(async move {
                s.get("postgres").await.map(|x| x.version)
            }));
        }
        for t in tasks {
            assert_eq!(t.await.expect("joined").expect("read"), 1);
        }
        assert_eq!(fake.calls.load(Ordering::SeqCst), 1, "single flight");
        store.get("postgres").await.expect("hit");
        assert_eq!(fake.calls.load(Ordering::SeqCst), 1, "cache hit");
        assert!(matches!(
            store.get("missing").await,
            Err(SecretError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn serves_stale_values_while_vault_is_down() {
        let (fake, store) = store(Duration::from_millis(50));
        store.get("redis").await.expect("first read");
        fake.down.store(true, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(60)).await;
        let served = store.get("redis").await.expect("stale value served");
        assert_eq!(served.version, 1);
        assert!(store.states()[0].stale);
        assert!(store.get("never-read").await.is_err());
        fake.down.store(false, Ordering::SeqCst);
        fake.version.store(2, Ordering::SeqCst);
        assert_eq!(store.get("redis").await.expect("fresh").version, 2);
        assert!(!store.states()[0].stale);
        assert_eq!(store.version("redis"), Some(2));
    }

    #[tokio::test]
    async fn the_background_loop_refreshes_before_expiry() {
        let (fake, store) = store(Duration::from_millis(200));
        store.get("mysql").await.expect("read");
        let task = tokio::spawn(store.clone().refresh_loop());
        tokio::time::sleep(Duration::from_millis(450)).await;
        task.abort();
        assert!(
            fake.calls.load(Ordering::SeqCst) >= 3,
            "re-read at half the TTL"
        );
    }
}
