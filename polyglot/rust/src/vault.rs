//! A Vault (OpenBao) client that keeps its AppRole token alive, as the Python library does.
//!
//! - [`plan_refresh`] is the pure rule: renew at `token_renew_fraction` (2/3) of the lease granted
//!   by the last login or renewal; log in again instead when the token is not renewable, when
//!   the last renewal granted less than 90% of what the login did (the max TTL is near), or when
//!   it has already expired.
//! - One refresh is ever in flight (a lock and a generation number), whether started by the
//!   schedule or by a request whose token was refused (checked with `lookup-self` first, so a
//!   genuine permission error never causes a login).
//! - While Vault is unreachable, retries back off exponentially with jitter ([`backoff_delay`]).
//! - No root token, ever: the only way in is an AppRole login.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::{BoxFuture, FutureExt, Shared};
use serde_json::{Map, Value};

use crate::config::{ConfigError, Settings};
use crate::masking::{is_masked_key, Redactor, MASK};
use crate::metrics::Metrics;
use crate::problems::{ApiError, Dependency};
use crate::secret::Secret;

// -- the token schedule (pure) -------------------------------------------------------------

/// What Vault granted the current token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenLease {
    /// Seconds granted by the last login or renewal (0: never expires).
    pub ttl: f64,
    /// Seconds granted by the login (what a renewal should give again).
    pub login_ttl: f64,
    pub renewable: bool,
    pub refreshed_at: Instant,
}

impl TokenLease {
    pub fn expires_at(&self) -> Option<Instant> {
        (self.ttl > 0.0).then(|| self.refreshed_at + Duration::from_secs_f64(self.ttl))
    }

    pub fn remaining(&self, now: Instant) -> Option<Duration> {
        self.expires_at()
            .map(|at| at.saturating_duration_since(now))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Renew,
    Login,
    Nothing,
}

/// A renewal granting under 90% of the login's TTL means the max TTL is near.
pub const CAPPED_TOLERANCE: f64 = 0.9;

/// The next token action and when to take it.
pub fn plan_refresh(lease: &TokenLease, now: Instant, fraction: f64) -> (Action, Instant) {
    let Some(expires) = lease.expires_at() else {
        return (Action::Nothing, now);
    };
    let at = lease.refreshed_at + Duration::from_secs_f64(fraction * lease.ttl);
    if now >= expires {
        return (Action::Login, now);
    }
    let capped = lease.ttl < lease.login_ttl * CAPPED_TOLERANCE;
    if capped || !lease.renewable {
        return (Action::Login, at);
    }
    (Action::Renew, at)
}

/// Exponential backoff with jitter: between half and all of min(max, initial * 2^(n-1));
/// `random` is in [0, 1).
pub fn backoff_delay(attempt: u32, initial: f64, maximum: f64, random: f64) -> Duration {
    let exponent = attempt.saturating_sub(1).min(60) as i32;
    let ceiling = maximum.min(initial * 2f64.powi(exponent));
    Duration::from_secs_f64(ceiling / 2.0 + random * ceiling / 2.0)
}

// -- errors and results --------------------------------------------------------------------

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("vault is unreachable ({operation}): {reason}")]
    Unreachable {
        operation: &'static str,
        reason: String,
    },
    #[error("vault did not answer in time ({0})")]
    Timeout(&'static str),
    #[error("vault answered {status} to {operation}")]
    Status {
        operation: &'static str,
        status: u16,
    },
    #[error("vault's answer to {0} is not what was expected")]
    Malformed(&'static str),
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
}

impl VaultError {
    pub fn status(&self) -> Option<u16> {
        match self {
            VaultError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl From<VaultError> for ApiError {
    fn from(err: VaultError) -> Self {
        match err {
            VaultError::Timeout(op) => ApiError::timeout(Dependency::Vault, op),
            VaultError::Config(e) => ApiError::Internal(e.to_string()),
            other => ApiError::unavailable(Dependency::Vault, other.to_string()),
        }
    }
}

/// A KV v2 secret; `Debug` masks secret-looking values.
#[derive(Clone)]
pub struct KvSecret {
    pub path: String,
    pub data: Map<String, Value>,
    pub version: u64,
}

impl KvSecret {
    /// A string value (`None` when missing or not a string).
    pub fn text(&self, key: &str) -> Option<&str> {
        self.data.get(key).and_then(Value::as_str)
    }

    /// A secret value, wrapped so that it never prints.
    pub fn secret(&self, key: &str) -> Option<Secret> {
        self.text(key).map(Secret::new)
    }

    /// `tls_enabled`, true unless the secret says false/0/no/off.
    pub fn tls_enabled(&self) -> bool {
        match self.data.get("tls_enabled") {
            None => true,
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => !matches!(
                s.trim().to_lowercase().as_str(),
                "false" | "0" | "no" | "off"
            ),
            Some(Value::Number(n)) => n.as_f64() != Some(0.0),
            Some(Value::Null) => false,
            Some(_) => true,
        }
    }
}

impl std::fmt::Debug for KvSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let masked: Vec<(&str, &str)> = self
            .data
            .iter()
            .map(|(k, v)| {
                let shown = if is_masked_key(k) {
                    MASK
                } else {
                    v.as_str().unwrap_or("<value>")
                };
                (k.as_str(), shown)
            })
            .collect();
        f.debug_struct("KvSecret")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("data", &masked)
            .finish()
    }
}

/// What the client knows about Vault from its own traffic (building it makes no call).
#[derive(Debug, Clone)]
pub struct VaultStatus {
    pub reachable: bool,
    pub authenticated: bool,
    pub token_ttl: Option<Duration>,
    pub last_error: Option<String>,
    pub down_for: Option<Duration>,
}

/// What `GET /v1/sys/health` (no token, not audited) said just now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VaultProbe {
    /// Vault answered and is unsealed (active or standby).
    Up,
    /// 503 (sealed) or 501 (not initialised).
    NotReady,
    /// No answer within the health timeout.
    Timeout,
    /// Refused, reset, or another 5xx.
    Unreachable,
}

type ProbeInFlight = Shared<BoxFuture<'static, VaultProbe>>;

async fn probe_once(http: reqwest::Client, url: String, timeout: Duration) -> VaultProbe {
    match tokio::time::timeout(timeout, http.get(url).timeout(timeout).send()).await {
        Err(_) => VaultProbe::Timeout,
        Ok(Err(err)) if err.is_timeout() => VaultProbe::Timeout,
        Ok(Err(_)) => VaultProbe::Unreachable,
        Ok(Ok(response)) => match response.status().as_u16() {
            501 | 503 => VaultProbe::NotReady,
            s if s >= 500 => VaultProbe::Unreachable,
            _ => VaultProbe::Up,
        },
    }
}

#[derive(Debug, Clone, Default)]
struct Reachability {
    ok: bool,
    last_error: Option<String>,
    down_since: Option<Instant>,
}

#[derive(Default)]
struct TokenState {
    token: Option<Secret>,
    lease: Option<TokenLease>,
    generation: u64,
    force_login: bool,
}

// -- the client ----------------------------------------------------------------------------

pub struct Vault {
    http: reqwest::Client,
    addr: String,
    settings: Arc<Settings>,
    state: Mutex<TokenState>,
    reach: Mutex<Reachability>,
    auth_lock: tokio::sync::Mutex<()>,
    redactor: Redactor,
    metrics: Metrics,
    requests: AtomicU64,
    logins: AtomicU64,
    renewals: AtomicU64,
    probe: Mutex<Option<ProbeInFlight>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Vault {
    pub fn new(
        settings: Arc<Settings>,
        redactor: Redactor,
        metrics: Metrics,
    ) -> Result<Self, VaultError> {
        let mut builder = reqwest::Client::builder()
            .timeout(settings.vault_timeout)
            .connect_timeout(settings.connect_timeout)
            .no_proxy()
            .pool_max_idle_per_host(1);
        if settings.vault_addr.starts_with("https://") {
            if let Some(ca) = settings.ca_file.as_ref().filter(|p| p.is_file()) {
                let pem = std::fs::read(ca).map_err(|e| VaultError::Unreachable {
                    operation: "ca",
                    reason: e.kind().to_string(),
                })?;
                for cert in reqwest::Certificate::from_pem_bundle(&pem)
                    .map_err(|_| VaultError::Malformed("ca file"))?
                {
                    builder = builder.add_root_certificate(cert);
                }
            }
        }
        let http = builder
            .build()
            .map_err(|_| VaultError::Malformed("http client"))?;
        Ok(Vault {
            http,
            addr: settings.vault_addr.clone(),
            settings,
            state: Mutex::new(TokenState::default()),
            reach: Mutex::new(Reachability {
                ok: true,
                ..Default::default()
            }),
            auth_lock: tokio::sync::Mutex::new(()),
            redactor,
            metrics,
            requests: AtomicU64::new(0),
            logins: AtomicU64::new(0),
            renewals: AtomicU64::new(0),
            probe: Mutex::new(None),
        })
    }

    /// Requests sent to Vault so far (for tests and the benchmark).
    pub fn request_count(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    pub fn login_count(&self) -> u64 {
        self.logins.load(Ordering::Relaxed)
    }

    pub fn renewal_count(&self) -> u64 {
        self.renewals.load(Ordering::Relaxed)
    }

    pub fn generation(&self) -> u64 {
        lock(&self.state).generation
    }

    /// Log in (retrying while Vault is unreachable, up to `vault_start_timeout`); a refused
    /// AppRole stops at once.
    pub async fn start(&self) -> Result<(), VaultError> {
        let deadline = Instant::now() + self.settings.vault_start_timeout;
        let mut attempt = 0;
        loop {
            let generation = self.generation();
            match self.refresh(Action::Login, generation).await {
                Ok(()) => return Ok(()),
                Err(err @ (VaultError::Config(_) | VaultError::Malformed(_))) => return Err(err),
                Err(err) if matches!(err.status(), Some(400 | 403)) => return Err(err),
                Err(err) => {
                    attempt += 1;
                    let delay = self.backoff(attempt);
                    if Instant::now() + delay > deadline {
                        return Err(err);
                    }
                    tracing::warn!(retry_in = delay.as_secs_f64(), error = %err, "vault not ready, retrying login");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        backoff_delay(
            attempt,
            self.settings.backoff_initial,
            self.settings.backoff_max,
            fastrand::f64(),
        )
    }

    pub fn token_ttl(&self) -> Option<Duration> {
        lock(&self.state)
            .lease
            .and_then(|lease| lease.remaining(Instant::now()))
    }

    pub fn status(&self) -> VaultStatus {
        let reach = lock(&self.reach).clone();
        let (has_token, ttl) = {
            let state = lock(&self.state);
            (
                state.token.is_some(),
                state.lease.and_then(|l| l.remaining(Instant::now())),
            )
        };
        VaultStatus {
            reachable: reach.ok,
            authenticated: has_token && ttl.map(|t| !t.is_zero()).unwrap_or(true),
            token_ttl: ttl,
            last_error: reach.last_error,
            down_for: reach.down_since.map(|t| t.elapsed()),
        }
    }

    /// Ask Vault whether it is up: `GET /v1/sys/health?standbyok=true&perfstandbyok=true`,
    /// without a token (Vault does not audit it), bounded by the health timeout. Concurrent
    /// callers share the request in flight.
    pub async fn probe(&self) -> VaultProbe {
        let in_flight = {
            let mut slot = lock(&self.probe);
            match slot.as_ref() {
                Some(running) if running.peek().is_none() => running.clone(),
                _ => {
                    let url = format!(
                        "{}/v1/sys/health?standbyok=true&perfstandbyok=true",
                        self.addr
                    );
                    self.metrics
                        .vault_requests
                        .with_label_values(&["health"])
                        .inc();
                    let running = probe_once(self.http.clone(), url, self.settings.health_timeout)
                        .boxed()
                        .shared();
                    *slot = Some(running.clone());
                    running
                }
            }
        };
        in_flight.await
    }

    /// Renew or log in, once: a caller that saw an older generation finds it already done.
    pub async fn refresh(&self, action: Action, seen_generation: u64) -> Result<(), VaultError> {
        let _guard = self.auth_lock.lock().await;
        if action == Action::Login && self.generation() != seen_generation {
            return Ok(());
        }
        match action {
            Action::Renew => self.renew().await,
            Action::Login => self.login().await,
            Action::Nothing => Ok(()),
        }
    }

    async fn login(&self) -> Result<(), VaultError> {
        let role_id = self.settings.role_id.read("DEVSTACK_VAULT_ROLE_ID_FILE")?;
        let secret_id = self
            .settings
            .secret_id
            .read("DEVSTACK_VAULT_SECRET_ID_FILE")?;
        self.redactor.add(role_id.expose());
        self.redactor.add(secret_id.expose());
        let body =
            serde_json::json!({"role_id": role_id.expose(), "secret_id": secret_id.expose()});
        let result = self
            .send(
                "login",
                reqwest::Method::POST,
                "auth/approle/login",
                Some(body),
                false,
                false,
            )
            .await;
        let answer = match result {
            Ok(answer) => answer,
            Err(err) => {
                self.metrics
                    .vault_logins
                    .with_label_values(&["failure"])
                    .inc();
                return Err(err);
            }
        };
        let auth = answer
            .as_ref()
            .and_then(|a| a.get("auth"))
            .ok_or(VaultError::Malformed("login"))?;
        let token = auth
            .get("client_token")
            .and_then(Value::as_str)
            .ok_or(VaultError::Malformed("login"))?;
        self.redactor.add(token);
        let ttl = auth
            .get("lease_duration")
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        let renewable = auth
            .get("renewable")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        {
            let mut state = lock(&self.state);
            state.token = Some(Secret::new(token));
            state.lease = Some(TokenLease {
                ttl,
                login_ttl: ttl,
                renewable,
                refreshed_at: Instant::now(),
            });
            state.generation += 1;
            state.force_login = false;
        }
        self.logins.fetch_add(1, Ordering::Relaxed);
        self.metrics
            .vault_logins
            .with_label_values(&["success"])
            .inc();
        tracing::info!(ttl, "vault login");
        Ok(())
    }

    async fn renew(&self) -> Result<(), VaultError> {
        let result = self
            .send(
                "renew",
                reqwest::Method::POST,
                "auth/token/renew-self",
                Some(serde_json::json!({})),
                true,
                false,
            )
            .await;
        let answer = match result {
            Ok(answer) => answer,
            Err(err) => {
                self.metrics
                    .vault_renewals
                    .with_label_values(&["failure"])
                    .inc();
                return Err(err);
            }
        };
        let auth = answer
            .as_ref()
            .and_then(|a| a.get("auth"))
            .ok_or(VaultError::Malformed("renew"))?;
        let ttl = auth
            .get("lease_duration")
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        let renewable = auth
            .get("renewable")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        {
            let mut state = lock(&self.state);
            let login_ttl = state.lease.map(|l| l.login_ttl).unwrap_or(0.0);
            state.lease = Some(TokenLease {
                ttl,
                login_ttl,
                renewable,
                refreshed_at: Instant::now(),
            });
        }
        self.renewals.fetch_add(1, Ordering::Relaxed);
        self.metrics
            .vault_renewals
            .with_label_values(&["success"])
            .inc();
        tracing::debug!(ttl, "vault token renewed");
        Ok(())
    }

    /// Keeps the token alive until the process ends (spawn it once, after `start`).
    pub async fn keep_alive(self: Arc<Self>) {
        let mut failures: u32 = 0;
        loop {
            let (lease, force_login) = {
                let state = lock(&self.state);
                (state.lease, state.force_login)
            };
            let Some(lease) = lease else { return };
            let now = Instant::now();
            let (planned, at) = plan_refresh(&lease, now, self.settings.token_renew_fraction);
            if planned == Action::Nothing {
                return;
            }
            let action = if force_login { Action::Login } else { planned };
            let delay = if failures > 0 {
                self.backoff(failures)
            } else {
                at.saturating_duration_since(now)
            };
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let generation = self.generation();
            match self.refresh(action, generation).await {
                Ok(()) => failures = 0,
                Err(err) => {
                    failures += 1;
                    if action == Action::Renew && err.status().is_some() {
                        // Refused (revoked, expired): a new token is needed.
                        lock(&self.state).force_login = true;
                    }
                    tracing::warn!(?action, attempt = failures, error = %err, "vault token refresh failed");
                }
            }
        }
    }

    /// Revoke the token (best effort, at shutdown).
    pub async fn revoke(&self) {
        let has_token = lock(&self.state).token.is_some();
        if has_token {
            let _ = tokio::time::timeout(
                Duration::from_secs(1),
                self.send(
                    "revoke",
                    reqwest::Method::POST,
                    "auth/token/revoke-self",
                    None,
                    true,
                    false,
                ),
            )
            .await;
            lock(&self.state).token = None;
        }
    }

    // -- requests ------------------------------------------------------------------------

    async fn send(
        &self,
        operation: &'static str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        auth: bool,
        missing_ok: bool,
    ) -> Result<Option<Value>, VaultError> {
        let mut request = self
            .http
            .request(method, format!("{}/v1/{path}", self.addr));
        if auth {
            let token = lock(&self.state).token.clone();
            if let Some(token) = token {
                request = request.header("X-Vault-Token", token.expose());
            }
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.metrics
            .vault_requests
            .with_label_values(&[operation])
            .inc();
        let response = match request.send().await {
            Ok(r) => r,
            Err(err) => {
                let timed_out = err.is_timeout();
                let reason = if timed_out {
                    "timed out"
                } else if err.is_connect() {
                    "connection refused"
                } else {
                    "transport error"
                };
                self.unreachable(operation, reason);
                return Err(if timed_out {
                    VaultError::Timeout(operation)
                } else {
                    VaultError::Unreachable {
                        operation,
                        reason: reason.into(),
                    }
                });
            }
        };
        let status = response.status().as_u16();
        if status >= 500 {
            let reason = if status == 503 {
                "503 sealed or not ready"
            } else {
                "server error"
            };
            self.unreachable(operation, reason);
            return Err(VaultError::Status { operation, status });
        }
        *lock(&self.reach) = Reachability {
            ok: true,
            last_error: None,
            down_since: None,
        };
        if status == 404 && missing_ok {
            return Ok(None);
        }
        if status >= 400 {
            self.metrics
                .vault_failures
                .with_label_values(&[operation])
                .inc();
            return Err(VaultError::Status { operation, status });
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|_| VaultError::Unreachable {
                operation,
                reason: "answer cut short".into(),
            })?;
        if bytes.is_empty() {
            return Ok(Some(Value::Object(Map::new())));
        }
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|_| VaultError::Malformed(operation))
    }

    fn unreachable(&self, operation: &'static str, reason: &str) {
        let mut reach = lock(&self.reach);
        let down_since = if reach.ok {
            Some(Instant::now())
        } else {
            reach.down_since
        };
        *reach = Reachability {
            ok: false,
            last_error: Some(reason.to_owned()),
            down_since,
        };
        self.metrics
            .vault_failures
            .with_label_values(&[operation])
            .inc();
    }

    /// An authenticated call; a refused token is checked, replaced and the call retried once.
    async fn call(
        &self,
        operation: &'static str,
        method: reqwest::Method,
        path: &str,
        missing_ok: bool,
    ) -> Result<Option<Value>, VaultError> {
        let generation = self.generation();
        match self
            .send(operation, method.clone(), path, None, true, missing_ok)
            .await
        {
            // A login replaced the token while this call was in flight: the refusal was the old
            // token's (asking Vault about the new one would say it is fine), so ask again.
            Err(VaultError::Status { status: 403, .. }) if self.generation() != generation => {
                return self
                    .send(operation, method, path, None, true, missing_ok)
                    .await;
            }
            Err(VaultError::Status { status: 403, .. }) if self.token_is_invalid().await => {}
            other => return other,
        }
        self.refresh(Action::Login, generation).await?;
        self.send(operation, method, path, None, true, missing_ok)
            .await
    }

    async fn token_is_invalid(&self) -> bool {
        matches!(
            self.send(
                "lookup",
                reqwest::Method::GET,
                "auth/token/lookup-self",
                None,
                true,
                false
            )
            .await,
            Err(VaultError::Status { status: 403, .. })
        )
    }

    /// The latest version of a KV v2 secret, or `None` when it does not exist.
    pub async fn kv_read(&self, path: &str) -> Result<Option<KvSecret>, VaultError> {
        let url = format!("{}/data/{path}", self.settings.kv_mount);
        let Some(answer) = self
            .call("kv_read", reqwest::Method::GET, &url, true)
            .await?
        else {
            return Ok(None);
        };
        let Some(outer) = answer.get("data").filter(|d| !d.is_null()) else {
            return Ok(None);
        };
        let data = outer
            .get("data")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let version = outer
            .get("metadata")
            .and_then(|m| m.get("version"))
            .and_then(Value::as_u64)
            .unwrap_or(0);
        for (key, value) in &data {
            if let Some(text) = value.as_str() {
                if is_masked_key(key) {
                    self.redactor.add(text);
                }
            }
        }
        Ok(Some(KvSecret {
            path: path.to_owned(),
            data,
            version,
        }))
    }

    /// The PEM chain of the issuing CA (no token needed).
    pub async fn ca_chain(&self) -> Result<String, VaultError> {
        let url = format!("{}/v1/{}/ca_chain", self.addr, self.settings.pki_mount);
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.metrics
            .vault_requests
            .with_label_values(&["ca_chain"])
            .inc();
        let response = self.http.get(url).send().await.map_err(|_| {
            self.unreachable("ca_chain", "transport error");
            VaultError::Unreachable {
                operation: "ca_chain",
                reason: "transport error".into(),
            }
        })?;
        if !response.status().is_success() {
            return Err(VaultError::Status {
                operation: "ca_chain",
                status: response.status().as_u16(),
            });
        }
        let text = response
            .text()
            .await
            .map_err(|_| VaultError::Malformed("ca_chain"))?;
        if !text.contains("BEGIN CERTIFICATE") {
            return Err(VaultError::Malformed("ca_chain"));
        }
        Ok(format!("{}\n", text.trim()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(ttl: f64, login_ttl: f64, renewable: bool, at: Instant) -> TokenLease {
        TokenLease {
            ttl,
            login_ttl,
            renewable,
            refreshed_at: at,
        }
    }

    #[test]
    fn renews_at_two_thirds() {
        let t0 = Instant::now();
        let (action, at) = plan_refresh(&lease(60.0, 60.0, true, t0), t0, 2.0 / 3.0);
        assert_eq!(action, Action::Renew);
        assert_eq!(at, t0 + Duration::from_secs(40));
    }

    #[test]
    fn logs_in_when_capped_not_renewable_or_expired() {
        let t0 = Instant::now();
        let capped = lease(5.0, 60.0, true, t0);
        assert_eq!(plan_refresh(&capped, t0, 2.0 / 3.0).0, Action::Login);
        let fixed = lease(60.0, 60.0, false, t0);
        assert_eq!(plan_refresh(&fixed, t0, 2.0 / 3.0).0, Action::Login);
        let expired = lease(3.0, 3.0, true, t0);
        let later = t0 + Duration::from_secs(4);
        assert_eq!(
            plan_refresh(&expired, later, 2.0 / 3.0),
            (Action::Login, later)
        );
        let forever = lease(0.0, 0.0, false, t0);
        assert_eq!(plan_refresh(&forever, t0, 2.0 / 3.0).0, Action::Nothing);
    }

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        assert_eq!(
            backoff_delay(1, 0.5, 30.0, 0.0),
            Duration::from_secs_f64(0.25)
        );
        assert_eq!(
            backoff_delay(1, 0.5, 30.0, 1.0),
            Duration::from_secs_f64(0.5)
        );
        assert_eq!(
            backoff_delay(3, 0.5, 30.0, 1.0),
            Duration::from_secs_f64(2.0)
        );
        assert_eq!(
            backoff_delay(40, 0.5, 30.0, 1.0),
            Duration::from_secs_f64(30.0)
        );
        assert!(backoff_delay(40, 0.5, 30.0, 0.0) >= Duration::from_secs(15));
    }

    #[test]
    fn a_secret_debug_masks_values() {
        let mut data = Map::new();
        data.insert("user".into(), Value::String("app".into()));
        data.insert("password".into(), Value::String("pa55word-xyz".into()));
        let secret = KvSecret {
            path: "postgres".into(),
            data,
            version: 3,
        };
        let shown = format!("{secret:?}");
        assert!(shown.contains("app") && shown.contains(MASK));
        assert!(!shown.contains("pa55word-xyz"));
        assert!(secret.tls_enabled());
    }
}
