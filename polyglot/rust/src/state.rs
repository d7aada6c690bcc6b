//! The running service's shared state: the Vault client, the secret cache, one managed client
//! per dependency, metrics. Built once at start ([`Stack::start`]), shared by every worker.

use std::path::PathBuf;
use std::sync::Arc;

use crate::config::{Settings, DEPENDENCIES};
use crate::masking::Redactor;
use crate::metrics::Metrics;
use crate::secrets::{SecretError, SecretStore};
use crate::stores::mongo::Mongo;
use crate::stores::mysql::Mysql;
use crate::stores::postgres::Postgres;
use crate::stores::rabbit::Rabbit;
use crate::stores::redis::Redis;
use crate::stores::Context;
use crate::tls::{TlsError, Trust};
use crate::vault::{Vault, VaultError};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot write the CA chain fetched from Vault: {0}")]
    CaFile(std::io::ErrorKind),
}

pub struct Stack {
    pub settings: Arc<Settings>,
    pub vault: Arc<Vault>,
    pub secrets: Arc<SecretStore>,
    pub metrics: Metrics,
    pub postgres: Postgres,
    pub mysql: Mysql,
    pub mongo: Mongo,
    pub redis: Redis,
    pub rabbit: Rabbit,
}

/// The CA chain: the configured file, else fetched from Vault (`pki_int/ca_chain`) and kept in
/// a file of this process's own (the MongoDB driver wants a file).
async fn ca_file(settings: &Settings, vault: &Vault) -> Result<PathBuf, StartError> {
    if let Some(path) = settings.ca_file.as_ref().filter(|p| p.is_file()) {
        return Ok(path.clone());
    }
    let pem = vault.ca_chain().await?;
    let path = std::env::temp_dir().join(format!("devstack-rust-{}-ca.pem", std::process::id()));
    std::fs::write(&path, pem).map_err(|e| StartError::CaFile(e.kind()))?;
    Ok(path)
}

impl Stack {
    /// Log in to Vault, load the CA, read every dependency's secret, and start the background
    /// work (token renewal, secret refresh). Connections are opened by [`Stack::warm_up`].
    pub async fn start(
        settings: Arc<Settings>,
        redactor: Redactor,
        metrics: Metrics,
    ) -> Result<Arc<Stack>, StartError> {
        let vault = Arc::new(Vault::new(settings.clone(), redactor, metrics.clone())?);
        vault.start().await?;
        let trust = Trust::load(&ca_file(&settings, &vault).await?)?;
        let secrets = Arc::new(SecretStore::new(
            vault.clone(),
            settings.secret_ttl,
            metrics.clone(),
        ));
        for dependency in DEPENDENCIES {
            secrets.get(dependency).await?;
        }
        tokio::spawn(vault.clone().keep_alive());
        tokio::spawn(secrets.clone().refresh_loop());
        let ttl_gauge = metrics.vault_token_ttl.clone();
        let ttl_vault = vault.clone();
        tokio::spawn(async move {
            loop {
                let ttl = ttl_vault
                    .token_ttl()
                    .map(|d| d.as_secs_f64())
                    .unwrap_or(0.0);
                ttl_gauge.set(ttl);
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            }
        });
        Ok(Arc::new(Self::assemble(
            settings, vault, secrets, trust, metrics,
        )))
    }

    /// The stack from its parts, without any I/O (what tests build with a fake secret source).
    pub fn assemble(
        settings: Arc<Settings>,
        vault: Arc<Vault>,
        secrets: Arc<SecretStore>,
        trust: Trust,
        metrics: Metrics,
    ) -> Stack {
        let ctx = Context {
            settings: settings.clone(),
            secrets: secrets.clone(),
            trust,
        };
        Stack {
            postgres: Postgres::new(ctx.clone()),
            mysql: Mysql::new(ctx.clone()),
            mongo: Mongo::new(ctx.clone()),
            redis: Redis::new(ctx.clone()),
            rabbit: Rabbit::new(ctx),
            settings,
            vault,
            secrets,
            metrics,
        }
    }

    /// Open a first connection to each dependency, in the background; a server down at start
    /// is connected on first use.
    pub fn warm_up(self: &Arc<Self>) {
        let stack = self.clone();
        tokio::spawn(async move {
            let (pg, my, mo, re, ra) = futures_util::join!(
                stack.postgres.health(),
                stack.mysql.health(),
                stack.mongo.health(),
                stack.redis.health(),
                stack.rabbit.health(),
            );
            for (name, result) in [
                ("postgres", pg),
                ("mysql", my),
                ("mongodb", mo),
                ("redis", re.map(|_| ())),
                ("rabbitmq", ra),
            ] {
                if let Err(err) = result {
                    tracing::warn!(dependency = name, error = %err, "dependency not reachable at start; will connect on first use");
                }
            }
            tracing::info!("warm-up done");
        });
    }
}
