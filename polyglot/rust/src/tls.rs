//! TLS: one rustls client configuration built from the stack's CA chain, shared by every pool
//! that takes one (PostgreSQL, the listener's own server configuration apart), and the CA as a
//! file and as PEM text for the drivers that want those (MongoDB, MariaDB, Redis, RabbitMQ).
//! There is no other trust: a server whose certificate the CA did not sign is refused.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{0} holds no usable certificate or key")]
    Empty(PathBuf),
    #[error("TLS configuration refused: {0}")]
    Config(String),
}

fn read_error(path: &Path, e: impl std::fmt::Display) -> TlsError {
    TlsError::Read {
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

/// The CA chain, loaded once.
#[derive(Clone)]
pub struct Trust {
    pub ca_file: PathBuf,
    pub ca_pem: String,
    pub client: Arc<ClientConfig>,
}

impl Trust {
    pub fn load(ca_file: &Path) -> Result<Self, TlsError> {
        let ca_pem = std::fs::read_to_string(ca_file).map_err(|e| read_error(ca_file, e.kind()))?;
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            let cert = cert.map_err(|e| read_error(ca_file, e))?;
            roots
                .add(cert)
                .map_err(|e| TlsError::Config(e.to_string()))?;
        }
        if roots.is_empty() {
            return Err(TlsError::Empty(ca_file.to_owned()));
        }
        let client = ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Trust {
            ca_file: ca_file.to_owned(),
            ca_pem,
            client: Arc::new(client),
        })
    }
}

/// The HTTPS listener's configuration: the certificate Vault issued for this app (leaf, then
/// issuer) and its key.
pub fn server_config(cert_file: &Path, key_file: &Path) -> Result<ServerConfig, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .map_err(|e| read_error(cert_file, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| read_error(cert_file, e))?;
    if certs.is_empty() {
        return Err(TlsError::Empty(cert_file.to_owned()));
    }
    let key =
        PrivateKeyDer::from_pem_file(key_file).map_err(|_| TlsError::Empty(key_file.to_owned()))?;
    ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Config(e.to_string()))
}
