//! DevStack Core's reference API in Rust: the whole of openapi/devstack.yaml over the stack's
//! Vault, PostgreSQL, MariaDB, the Mongo-protocol server, the Redis Cluster and RabbitMQ, with
//! rustls everywhere. `main.rs` only calls [`run`].

pub mod config;
pub mod health;
pub mod http;
pub mod input;
pub mod masking;
pub mod metrics;
pub mod problems;
pub mod ratelimit;
pub mod routes;
pub mod secret;
pub mod secrets;
pub mod state;
pub mod stores;
pub mod tls;
pub mod vault;

use std::process::ExitCode;
use std::sync::Arc;

use tracing::level_filters::LevelFilter;

use crate::masking::{RedactingWriter, Redactor};

fn level(name: &str) -> LevelFilter {
    match name {
        "DEBUG" => LevelFilter::DEBUG,
        "WARNING" => LevelFilter::WARN,
        "ERROR" | "CRITICAL" => LevelFilter::ERROR,
        _ => LevelFilter::INFO,
    }
}

/// JSON lines on stdout, every line through the redactor.
pub fn init_logging(redactor: Redactor, level_name: &str) {
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(true)
        .with_max_level(level(level_name))
        .with_writer(RedactingWriter::new(redactor))
        .try_init();
}

/// Every 10 s, give the heap pages malloc keeps after a burst of requests back to the system
/// (glibc only trims the top of the main arena by itself), so the resident size follows the
/// steady state rather than the highest point.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    tokio::spawn(async {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(10));
        loop {
            every.tick().await;
            // SAFETY: malloc_trim only returns free pages of malloc's arenas to the kernel.
            unsafe {
                libc::malloc_trim(0);
            }
        }
    });
}

/// Start everything and serve until SIGTERM; the exit code says how it ended.
pub async fn run() -> ExitCode {
    // One crypto provider for every rustls user in the process.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let settings = match config::Settings::from_env() {
        Ok(settings) => Arc::new(settings),
        Err(err) => {
            eprintln!(
                "{}",
                serde_json::json!({"level": "ERROR", "message": "configuration refused", "error": err.to_string()})
            );
            return ExitCode::from(2);
        }
    };
    let redactor = Redactor::default();
    init_logging(redactor.clone(), &settings.log_level);
    let metrics = metrics::Metrics::new();
    let stack = match state::Stack::start(settings.clone(), redactor, metrics).await {
        Ok(stack) => stack,
        Err(err) => {
            tracing::error!(error = %err, "start failed");
            return ExitCode::from(1);
        }
    };
    stack.warm_up();
    release_freed_memory();
    tracing::info!(implementation = routes::IMPLEMENTATION, "app started");
    let served = http::serve(settings, stack.clone()).await;
    stack.vault.revoke().await;
    match served {
        Ok(()) => {
            tracing::info!("app stopped");
            ExitCode::SUCCESS
        }
        Err(err) => {
            tracing::error!(error = %err, "server failed");
            ExitCode::from(1)
        }
    }
}
