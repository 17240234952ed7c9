//! Settings every service shares, as clap argument groups each service flattens into its own
//! `Config` (every flag with an environment fallback).

use std::path::PathBuf;

use clap::Args;

use crate::{
    access::{AccessTable, AuthLayer},
    auth::TokenVerifier,
    clock::SharedClock,
};

/// How callers are authenticated.
#[derive(Debug, Clone, Args)]
pub struct AuthArgs {
    /// PEM file with the Ed25519 public key that verifies tokens.
    #[arg(long, env = "JWT_PUBLIC_KEY_FILE", default_value = "data/dev-keys/token-public.pem")]
    pub jwt_public_key_file: PathBuf,
    /// The audience tokens must name.
    #[arg(long, env = "JWT_AUDIENCE", default_value = "supervision")]
    pub jwt_audience: String,
    /// The issuer tokens must name.
    #[arg(long, env = "JWT_ISSUER", default_value = "supervision")]
    pub jwt_issuer: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the token public key {path}: {source}")]
    ReadKey { path: PathBuf, source: std::io::Error },
    #[error("the token public key {path} is not an Ed25519 public key: {source}")]
    BadKey { path: PathBuf, source: crate::auth::KeyError },
    #[error(transparent)]
    Table(#[from] crate::access::TableError),
    #[error("bad endpoint for {name}: {problem}")]
    Endpoint { name: &'static str, problem: String },
}

impl AuthArgs {
    /// The auth layer: this key, this audience and issuer, and the shipped RPC roles table.
    pub fn layer(&self, clock: SharedClock) -> Result<AuthLayer, ConfigError> {
        let path = &self.jwt_public_key_file;
        let pem = std::fs::read(path).map_err(|source| ConfigError::ReadKey { path: path.clone(), source })?;
        let verifier = TokenVerifier::from_public_pem(&pem, &self.jwt_audience, &self.jwt_issuer)
            .map_err(|source| ConfigError::BadKey { path: path.clone(), source })?;
        Ok(AuthLayer::new(verifier, AccessTable::shipped()?, clock))
    }
}

/// TLS on the gRPC port. When it is on, health is also served in plaintext on a health-only
/// port, because Kubernetes gRPC probes carry no certificate.
#[derive(Debug, Clone, Default, Args)]
pub struct TlsArgs {
    /// PEM certificate chain of this service; with --tls-key-file turns TLS on.
    #[arg(long, env = "TLS_CERT_FILE", requires = "tls_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of the certificate.
    #[arg(long, env = "TLS_KEY_FILE", requires = "tls_cert_file")]
    pub tls_key_file: Option<PathBuf>,
    /// PEM CA that client certificates must chain to (mutual TLS); optional.
    #[arg(long, env = "TLS_CLIENT_CA_FILE")]
    pub tls_client_ca_file: Option<PathBuf>,
    /// Plaintext health-only listen address, used when TLS is on.
    #[arg(long, env = "HEALTH_LISTEN")]
    pub health_listen: Option<String>,
}

impl TlsArgs {
    /// The TLS settings, or `None` for plaintext.
    pub fn load(&self, default_health_listen: &str) -> Result<Option<crate::bootstrap::Tls>, ConfigError> {
        let (Some(cert), Some(key)) = (&self.tls_cert_file, &self.tls_key_file) else { return Ok(None) };
        let read =
            |path: &PathBuf| std::fs::read(path).map_err(|source| ConfigError::ReadKey { path: path.clone(), source });
        let mut config = tonic::transport::ServerTlsConfig::new()
            .identity(tonic::transport::Identity::from_pem(read(cert)?, read(key)?));
        if let Some(ca) = &self.tls_client_ca_file {
            config = config.client_ca_root(tonic::transport::Certificate::from_pem(read(ca)?));
        }
        Ok(Some(crate::bootstrap::Tls {
            config,
            health_listen: self.health_listen.clone().unwrap_or_else(|| default_health_listen.to_owned()),
        }))
    }
}

/// Where "now" comes from. Only `test-clock` builds have a flag here at all.
#[derive(Debug, Clone, Default, Args)]
pub struct ClockArgs {
    /// A file holding a clock offset in seconds, read on every call (test builds only).
    #[cfg(feature = "test-clock")]
    #[arg(long, env = "TEST_CLOCK_FILE")]
    pub test_clock_file: Option<PathBuf>,
}

impl ClockArgs {
    pub fn clock(&self) -> SharedClock {
        #[cfg(feature = "test-clock")]
        if let Some(path) = &self.test_clock_file {
            tracing::warn!(file = %path.display(), "using a test clock");
            return std::sync::Arc::new(crate::clock::FileOffsetClock::new(path.clone()));
        }
        crate::clock::system()
    }
}
