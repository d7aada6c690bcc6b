//! Settings from `DEVSTACK_*` variables, with the same names and defaults as the Python library
//! (docs/client.md) and web layer (`DEVSTACK_API_*`). Read once at start; a bad value stops the
//! process with a message naming the variable.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::secret::Secret;

/// The stack's base ports (stack/services.toml), before the offset.
pub const BASE_PORTS: &[(&str, u16)] = &[
    ("vault", 8200),
    ("postgres", 5432),
    ("mysql", 3306),
    ("mongodb", 27017),
    ("redis", 6379),
    ("redis_tls", 6390),
    ("rabbitmq", 5672),
    ("rabbitmq_tls", 5671),
];

/// This implementation's own ports (stack/services.toml: `rust`).
pub const DEFAULT_HTTP_PORT: u16 = 8004;
pub const DEFAULT_HTTPS_PORT: u16 = 8447;

#[derive(Debug, thiserror::Error)]
#[error("{variable}: {problem}")]
pub struct ConfigError {
    pub variable: String,
    pub problem: String,
}

fn bad(variable: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        variable: variable.to_owned(),
        problem: problem.into(),
    }
}

/// Where the AppRole's role-id and secret-id come from (files are re-read at each login).
#[derive(Debug, Clone)]
pub enum Credential {
    Value(Secret),
    File(PathBuf),
}

impl Credential {
    pub fn read(&self, what: &str) -> Result<Secret, ConfigError> {
        match self {
            Credential::Value(value) => Ok(value.clone()),
            Credential::File(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    bad(
                        what,
                        format!("cannot read {}: {}", path.display(), e.kind()),
                    )
                })?;
                let text = text.trim();
                if text.is_empty() {
                    return Err(bad(what, format!("{} is empty", path.display())));
                }
                Ok(Secret::new(text.to_owned()))
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub host: String,
    pub port_offset: u16,
    pub vault_addr: String,
    pub role_id: Credential,
    pub secret_id: Credential,
    pub kv_mount: String,
    pub pki_mount: String,
    pub ca_file: Option<PathBuf>,
    pub vault_timeout: Duration,
    pub vault_start_timeout: Duration,
    pub token_renew_fraction: f64,
    pub backoff_initial: f64,
    pub backoff_max: f64,
    pub secret_ttl: Duration,
    pub connect_timeout: Duration,
    pub operation_timeout: Duration,
    pub health_timeout: Duration,
    pub pool_max_size: usize,
    pub channel_pool_size: usize,
    pub cache_key_prefix: String,
    hosts: HashMap<String, String>,
    ports: HashMap<String, u16>,
    // The web layer (DEVSTACK_API_*).
    pub api_host: String,
    pub http_port: u16,
    pub https_port: u16,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    pub cors_origins: Vec<String>,
    pub rate_limit: u64,
    pub rate_window_seconds: u64,
    pub body_limit: usize,
    pub log_level: String,
    pub workers: usize,
}

/// The dependencies whose credentials are in KV v2 under `secret/<name>`.
pub const DEPENDENCIES: [&str; 5] = ["postgres", "mysql", "mongodb", "redis", "rabbitmq"];

type Env = dyn Fn(&str) -> Option<String>;

fn get(env: &Env, name: &str) -> Option<String> {
    env(&format!("DEVSTACK_{name}")).filter(|v| !v.trim().is_empty())
}

fn number<T: std::str::FromStr + PartialOrd + Copy + std::fmt::Display>(
    env: &Env,
    name: &str,
    default: T,
    min: T,
    max: T,
) -> Result<T, ConfigError> {
    let variable = format!("DEVSTACK_{name}");
    match get(env, name) {
        None => Ok(default),
        Some(text) => {
            let value: T = text
                .trim()
                .parse()
                .map_err(|_| bad(&variable, "not a number"))?;
            if value < min || value > max {
                return Err(bad(&variable, format!("must be between {min} and {max}")));
            }
            Ok(value)
        }
    }
}

fn seconds(env: &Env, name: &str, default: f64, max: f64) -> Result<Duration, ConfigError> {
    let value = number(env, name, default, 0.001, max)?;
    Ok(Duration::from_secs_f64(value))
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

fn valid_origin(origin: &str) -> bool {
    if origin == "*" {
        return true;
    }
    let rest = match origin.split_once("://") {
        Some(("http" | "https", rest)) => rest,
        _ => return false,
    };
    let (host, port) = if let Some(stripped) = rest.strip_prefix('[') {
        match stripped.split_once(']') {
            Some((h, p)) => (h, p),
            None => return false,
        }
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h, p),
            None => (rest, ""),
        }
    };
    let port_ok = port.is_empty()
        || port
            .strip_prefix(':')
            .or(Some(port))
            .map(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()))
            .unwrap_or(false);
    !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b':')
        && port_ok
}

impl Settings {
    /// Settings from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&|name| std::env::var(name).ok())
    }

    /// Settings from any variable lookup (tests give a map).
    pub fn from_lookup(env: &Env) -> Result<Self, ConfigError> {
        if get(env, "VAULT_TOKEN").is_some() {
            return Err(bad(
                "DEVSTACK_VAULT_TOKEN",
                "this implementation authenticates with an AppRole only; unset it",
            ));
        }
        let port_offset = number(env, "PORT_OFFSET", 0u16, 0, 20000)?;
        let host = get(env, "HOST").unwrap_or_else(|| "127.0.0.1".into());
        let state_dir = get(env, "STATE_DIR").map(PathBuf::from);
        let approle = get(env, "APPROLE");
        let credential = |name: &str, file_name: &str| -> Result<Credential, ConfigError> {
            if let Some(value) = get(env, name) {
                return Ok(Credential::Value(Secret::new(value.trim().to_owned())));
            }
            if let Some(path) = get(env, &format!("{name}_FILE")) {
                return Ok(Credential::File(PathBuf::from(path)));
            }
            match (&state_dir, &approle) {
                (Some(dir), Some(role)) => Ok(Credential::File(
                    dir.join("approle").join(role).join(file_name),
                )),
                _ => Err(bad(
                    &format!("DEVSTACK_{name}_FILE"),
                    "no Vault credentials: set DEVSTACK_VAULT_ROLE_ID_FILE and \
                     DEVSTACK_VAULT_SECRET_ID_FILE (or DEVSTACK_STATE_DIR with DEVSTACK_APPROLE); \
                     there is no root-token fallback",
                )),
            }
        };
        let role_id = credential("VAULT_ROLE_ID", "role-id")?;
        let secret_id = credential("VAULT_SECRET_ID", "secret-id")?;

        let vault_addr = get(env, "VAULT_ADDR")
            .unwrap_or_else(|| format!("http://{host}:{}", 8200 + port_offset))
            .trim_end_matches('/')
            .to_owned();
        let (scheme, rest) = vault_addr
            .split_once("://")
            .ok_or_else(|| bad("DEVSTACK_VAULT_ADDR", "not an http(s) URL"))?;
        let vault_host = rest.split('/').next().unwrap_or("");
        let vault_host = match vault_host.rsplit_once(':') {
            Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => vault_host,
        };
        if !matches!(scheme, "http" | "https") || vault_host.is_empty() {
            return Err(bad("DEVSTACK_VAULT_ADDR", "not an http(s) URL"));
        }
        let insecure_ok = get(env, "VAULT_ALLOW_INSECURE_HTTP")
            .map(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
            .unwrap_or(false);
        if scheme == "http" && !is_loopback(vault_host) && !insecure_ok {
            return Err(bad(
                "DEVSTACK_VAULT_ADDR",
                "plain HTTP to a host that is not loopback: use https, or set \
                 DEVSTACK_VAULT_ALLOW_INSECURE_HTTP",
            ));
        }

        let ca_file = get(env, "CA_FILE").map(PathBuf::from).or_else(|| {
            state_dir
                .as_ref()
                .map(|d| d.join("ca").join("ca-chain.pem"))
        });

        let mut hosts = HashMap::new();
        let mut ports = HashMap::new();
        for dep in DEPENDENCIES {
            let upper = dep.to_ascii_uppercase();
            if let Some(h) = get(env, &format!("{upper}_HOST")) {
                hosts.insert(dep.to_owned(), h);
            }
            for (key, variable) in [
                (dep.to_owned(), format!("{upper}_PORT")),
                (format!("{dep}_tls"), format!("{upper}_TLS_PORT")),
            ] {
                if get(env, &variable).is_some() {
                    ports.insert(key, number(env, &variable, 1u16, 1, 65535)?);
                }
            }
        }

        let backoff_initial = number(env, "BACKOFF_INITIAL", 0.5f64, 0.001, 60.0)?;
        let backoff_max = number(env, "BACKOFF_MAX", 30.0f64, 0.001, 600.0)?;
        if backoff_initial > backoff_max {
            return Err(bad(
                "DEVSTACK_BACKOFF_INITIAL",
                "is larger than DEVSTACK_BACKOFF_MAX",
            ));
        }

        let cors_origins = match env("DEVSTACK_API_CORS_ORIGINS") {
            None => Vec::new(),
            Some(text) => {
                let text = text.trim();
                let list: Vec<String> = if text.starts_with('[') {
                    serde_json::from_str(text)
                        .map_err(|_| bad("DEVSTACK_API_CORS_ORIGINS", "not a JSON list"))?
                } else {
                    text.split(',')
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty())
                        .collect()
                };
                if let Some(wrong) = list.iter().find(|o| !valid_origin(o)) {
                    return Err(bad(
                        "DEVSTACK_API_CORS_ORIGINS",
                        format!("{wrong:?} is not an origin: use scheme://host[:port], or *"),
                    ));
                }
                list
            }
        };
        let tls_cert_file = get(env, "API_TLS_CERT_FILE").map(PathBuf::from);
        let tls_key_file = get(env, "API_TLS_KEY_FILE").map(PathBuf::from);
        if tls_cert_file.is_some() != tls_key_file.is_some() {
            return Err(bad(
                "DEVSTACK_API_TLS_CERT_FILE",
                "set both DEVSTACK_API_TLS_CERT_FILE and DEVSTACK_API_TLS_KEY_FILE",
            ));
        }
        let http_port = number(env, "API_HTTP_PORT", DEFAULT_HTTP_PORT, 1, 65535)?;
        let https_port = number(env, "API_HTTPS_PORT", DEFAULT_HTTPS_PORT, 1, 65535)?;
        if http_port == https_port {
            return Err(bad(
                "DEVSTACK_API_HTTPS_PORT",
                "must differ from DEVSTACK_API_HTTP_PORT",
            ));
        }
        let log_level = get(env, "API_LOG_LEVEL")
            .unwrap_or_else(|| "INFO".into())
            .to_ascii_uppercase();
        if !matches!(
            log_level.as_str(),
            "DEBUG" | "INFO" | "WARNING" | "ERROR" | "CRITICAL"
        ) {
            return Err(bad(
                "DEVSTACK_API_LOG_LEVEL",
                "one of DEBUG, INFO, WARNING, ERROR, CRITICAL",
            ));
        }

        Ok(Settings {
            host,
            port_offset,
            vault_addr,
            role_id,
            secret_id,
            kv_mount: get(env, "VAULT_KV_MOUNT").unwrap_or_else(|| "secret".into()),
            pki_mount: get(env, "VAULT_PKI_MOUNT").unwrap_or_else(|| "pki_int".into()),
            ca_file,
            vault_timeout: seconds(env, "VAULT_TIMEOUT", 5.0, 120.0)?,
            vault_start_timeout: seconds(env, "VAULT_START_TIMEOUT", 30.0, 3600.0)?,
            token_renew_fraction: number(env, "TOKEN_RENEW_FRACTION", 2.0 / 3.0, 0.1, 0.95)?,
            backoff_initial,
            backoff_max,
            secret_ttl: seconds(env, "SECRET_TTL", 300.0, 86400.0)?,
            connect_timeout: seconds(env, "CONNECT_TIMEOUT", 3.0, 120.0)?,
            operation_timeout: seconds(env, "OPERATION_TIMEOUT", 5.0, 600.0)?,
            health_timeout: seconds(env, "HEALTH_TIMEOUT", 2.0, 60.0)?,
            pool_max_size: number(env, "POOL_MAX_SIZE", 4usize, 1, 1000)?,
            channel_pool_size: number(env, "CHANNEL_POOL_SIZE", 8usize, 1, 1000)?,
            cache_key_prefix: get(env, "CACHE_KEY_PREFIX").unwrap_or_else(|| "cache:".into()),
            hosts,
            ports,
            api_host: get(env, "API_HOST").unwrap_or_else(|| "127.0.0.1".into()),
            http_port,
            https_port,
            tls_cert_file,
            tls_key_file,
            cors_origins,
            rate_limit: number(env, "API_RATE_LIMIT", 0u64, 0, u64::MAX)?,
            rate_window_seconds: number(env, "API_RATE_WINDOW_SECONDS", 60u64, 1, 86400)?,
            body_limit: number(env, "API_BODY_LIMIT", 1_048_576usize, 1, 64 * 1_048_576)?,
            log_level,
            workers: number(env, "API_WORKERS", 1usize, 1, 64)?,
        })
    }

    /// (host, port) of a dependency; `tls` picks the TLS port of Redis and RabbitMQ.
    pub fn endpoint(&self, dependency: &str, tls: bool) -> (String, u16) {
        let host = self
            .hosts
            .get(dependency)
            .cloned()
            .unwrap_or_else(|| self.host.clone());
        let key = if tls && matches!(dependency, "redis" | "rabbitmq") {
            format!("{dependency}_tls")
        } else {
            dependency.to_owned()
        };
        let port = self.ports.get(&key).copied().unwrap_or_else(|| {
            BASE_PORTS
                .iter()
                .find(|(name, _)| *name == key)
                .map(|(_, p)| p.saturating_add(self.port_offset))
                .unwrap_or(0)
        });
        (host, port)
    }

    pub fn tls_enabled(&self) -> bool {
        self.tls_cert_file.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::from_lookup(&move |name: &str| map.get(name).cloned())
    }

    const FILES: [(&str, &str); 2] = [
        ("DEVSTACK_VAULT_ROLE_ID_FILE", "/nonexistent/role-id"),
        ("DEVSTACK_VAULT_SECRET_ID_FILE", "/nonexistent/secret-id"),
    ];

    #[test]
    fn defaults_follow_the_offset() {
        let mut pairs = FILES.to_vec();
        pairs.push(("DEVSTACK_PORT_OFFSET", "1000"));
        let s = settings(&pairs).expect("valid");
        assert_eq!(s.vault_addr, "http://127.0.0.1:9200");
        assert_eq!(s.endpoint("postgres", true), ("127.0.0.1".into(), 6432));
        assert_eq!(s.endpoint("redis", true), ("127.0.0.1".into(), 7390));
        assert_eq!(s.endpoint("rabbitmq", true), ("127.0.0.1".into(), 6671));
        assert_eq!(s.endpoint("rabbitmq", false), ("127.0.0.1".into(), 6672));
        assert_eq!((s.http_port, s.https_port), (8004, 8447));
        assert_eq!(s.pool_max_size, 4);
        assert!((s.token_renew_fraction - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(s.secret_ttl, Duration::from_secs(300));
        assert_eq!(s.rate_limit, 0);
    }

    #[test]
    fn explicit_ports_are_used_as_they_are() {
        let mut pairs = FILES.to_vec();
        pairs.extend([
            ("DEVSTACK_PORT_OFFSET", "1000"),
            ("DEVSTACK_REDIS_TLS_PORT", "7000"),
            ("DEVSTACK_MYSQL_HOST", "db.internal"),
        ]);
        let s = settings(&pairs).expect("valid");
        assert_eq!(s.endpoint("redis", true).1, 7000);
        assert_eq!(s.endpoint("mysql", true), ("db.internal".into(), 4306));
    }

    #[test]
    fn no_credentials_no_root_token() {
        let err = settings(&[]).expect_err("no credentials");
        assert!(err.to_string().contains("no root-token fallback"));
        let mut pairs = FILES.to_vec();
        pairs.push(("DEVSTACK_VAULT_TOKEN", "hvs.something"));
        assert!(settings(&pairs).is_err());
    }

    #[test]
    fn plain_http_only_on_loopback() {
        let mut pairs = FILES.to_vec();
        pairs.push(("DEVSTACK_VAULT_ADDR", "http://vault.example.org:8200"));
        assert!(settings(&pairs).is_err());
        pairs.push(("DEVSTACK_VAULT_ALLOW_INSECURE_HTTP", "true"));
        assert!(settings(&pairs).is_ok());
    }

    #[test]
    fn bad_numbers_and_origins_are_refused() {
        let mut pairs = FILES.to_vec();
        pairs.push(("DEVSTACK_API_RATE_LIMIT", "lots"));
        assert!(settings(&pairs).is_err());
        let mut pairs = FILES.to_vec();
        pairs.push((
            "DEVSTACK_API_CORS_ORIGINS",
            "http://a.example, https://b.example:8443",
        ));
        assert_eq!(settings(&pairs).expect("valid").cors_origins.len(), 2);
        let mut pairs = FILES.to_vec();
        pairs.push(("DEVSTACK_API_CORS_ORIGINS", "http://a.example/path"));
        assert!(settings(&pairs).is_err());
    }

    #[test]
    fn credential_files_are_read_and_trimmed() {
        let dir = std::env::temp_dir().join(format!("devstack-rust-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("role-id");
        std::fs::write(&file, "abc-123\n").expect("write");
        let value = Credential::File(file).read("role-id").expect("readable");
        assert_eq!(value.expose(), "abc-123");
        let empty = dir.join("empty");
        std::fs::write(&empty, "  \n").expect("write");
        assert!(Credential::File(empty).read("secret-id").is_err());
        let _ = std::fs::remove_dir_all(dir);
    }
}
