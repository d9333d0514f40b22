//! TLS with rustls (ring): the API listener's server configuration, re-read when its files
//! change or on SIGHUP, and the client configurations nodes and the CLI connect with.
//!
//! One listener serves customers and peers. With mutual TLS between nodes (`cluster.ca_file`)
//! it asks every client for a certificate, optionally so that browsers still connect: a
//! certificate that does not chain to the cluster CA (expired, another CA, self-signed) fails
//! the handshake; a connection that showed a valid one is a peer's, and only a peer's
//! connection may call `/raft/*`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use rustls::client::ClientConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use rustls::RootCertStore;

use crate::config::{PeerTlsConfig, TlsConfig};

/// How often the certificate files' modification times are compared.
pub const RELOAD_CHECK: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{} holds no PEM certificate ({reason})", path.display())]
    NoCertificate { path: PathBuf, reason: String },
    #[error("{} holds no PEM private key ({reason})", path.display())]
    NoKey { path: PathBuf, reason: String },
    #[error("{}: {reason}", path.display())]
    BadCa { path: PathBuf, reason: String },
    #[error("the certificate in {} and the key in {} do not make a TLS configuration: {reason}", cert.display(), key.display())]
    Config { cert: PathBuf, key: PathBuf, reason: String },
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { path: path.to_owned(), source })
}

/// Every certificate in a PEM file, leaf first.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::NoCertificate { path: path.to_owned(), reason: e.to_string() })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { path: path.to_owned(), reason: "the file is empty".into() });
    }
    Ok(certs)
}

/// The first private key in a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| TlsError::NoKey { path: path.to_owned(), reason: e.to_string() })
}

/// A trust store of the certificates in `path`.
pub fn load_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path)? {
        roots.add(cert).map_err(|e| TlsError::BadCa { path: path.to_owned(), reason: e.to_string() })?;
    }
    Ok(roots)
}

/// The listener's configuration: TLS 1.2 and 1.3, h2 and http/1.1 by ALPN, client
/// certificates checked against the cluster CA when there is one.
pub fn server_config(api: &TlsConfig, peers: Option<&PeerTlsConfig>) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = load_certs(&api.cert_file)?;
    let key = load_key(&api.key_file)?;
    let problem = |reason: String| TlsError::Config { cert: api.cert_file.clone(), key: api.key_file.clone(), reason };
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| problem(e.to_string()))?;
    let builder = match peers {
        Some(p) => {
            let roots = load_roots(&p.ca_file)?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .allow_unauthenticated()
                .build()
                .map_err(|e| TlsError::BadCa { path: p.ca_file.clone(), reason: e.to_string() })?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| problem(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// How a node connects to its peers: it trusts the cluster CA and shows its own certificate.
pub fn peer_client_config(peers: &PeerTlsConfig) -> Result<ClientConfig, TlsError> {
    let roots = load_roots(&peers.ca_file)?;
    let certs = load_certs(&peers.cert_file)?;
    let key = load_key(&peers.key_file)?;
    let problem =
        |reason: String| TlsError::Config { cert: peers.cert_file.clone(), key: peers.key_file.clone(), reason };
    ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| problem(e.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .map_err(|e| problem(e.to_string()))
}

/// How the CLI connects to a node over HTTPS: trusting the CA in `ca_file`, no certificate
/// of its own.
pub fn ca_client_config(ca_file: &Path) -> Result<ClientConfig, TlsError> {
    let roots = load_roots(ca_file)?;
    ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::BadCa { path: ca_file.to_owned(), reason: e.to_string() })
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
}

/// The files a configuration was read from, with the modification times seen then.
struct Watched {
    files: Vec<PathBuf>,
    seen: Vec<Option<SystemTime>>,
}

impl Watched {
    fn new(files: Vec<PathBuf>) -> Self {
        let seen = files.iter().map(|f| modified(f)).collect();
        Self { files, seen }
    }

    /// True (and remembered) when any file's modification time differs from the last look.
    fn changed(&mut self) -> bool {
        let now: Vec<_> = self.files.iter().map(|f| modified(f)).collect();
        let changed = now != self.seen;
        self.seen = now;
        changed
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The listener's TLS configuration in force, swapped whole when the files change.
pub struct ServerTls {
    api: TlsConfig,
    peers: Option<PeerTlsConfig>,
    current: RwLock<Arc<ServerConfig>>,
    watched: Mutex<Watched>,
}

impl ServerTls {
    pub fn load(api: TlsConfig, peers: Option<PeerTlsConfig>) -> Result<Self, TlsError> {
        let config = server_config(&api, peers.as_ref())?;
        let mut files = vec![api.cert_file.clone(), api.key_file.clone()];
        if let Some(p) = &peers {
            files.push(p.ca_file.clone());
        }
        Ok(Self { api, peers, current: RwLock::new(config), watched: Mutex::new(Watched::new(files)) })
    }

    /// The configuration for the next handshake.
    pub fn current(&self) -> Arc<ServerConfig> {
        match self.current.read() {
            Ok(config) => config.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Read the files again if they changed (or always, with `force`). A configuration that
    /// does not load is logged and the one in force kept: a half-copied certificate must not
    /// take the listener down.
    pub fn reload(&self, force: bool) -> bool {
        let changed = match self.watched.lock() {
            Ok(mut watched) => watched.changed(),
            Err(poisoned) => poisoned.into_inner().changed(),
        };
        if !changed && !force {
            return false;
        }
        match server_config(&self.api, self.peers.as_ref()) {
            Ok(config) => {
                match self.current.write() {
                    Ok(mut current) => *current = config,
                    Err(poisoned) => *poisoned.into_inner() = config,
                }
                tracing::info!(cert = %self.api.cert_file.display(), "TLS certificates reloaded");
                metrics::counter!("pizza_orders_tls_reloads_total", "outcome" => "ok").increment(1);
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "TLS certificates changed but do not load; still serving the previous ones");
                metrics::counter!("pizza_orders_tls_reloads_total", "outcome" => "failed").increment(1);
                false
            }
        }
    }
}

/// Calls `reload` every [`RELOAD_CHECK`] and on SIGHUP, until the process ends.
pub fn spawn_reloader(reload: impl Fn(bool) + Send + Sync + 'static) {
    let reload = Arc::new(reload);
    let on_timer = reload.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(RELOAD_CHECK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            on_timer(false);
        }
    });
    #[cfg(unix)]
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; certificates are still re-read when their files change");
            return;
        };
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reading the TLS certificates again");
            reload(true);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, body).unwrap();
        path
    }

    #[test]
    fn unreadable_or_empty_files_are_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = load_certs(&dir.path().join("nope.pem")).unwrap_err().to_string();
        assert!(missing.contains("nope.pem"), "{missing}");
        let empty = write(dir.path(), "empty.pem", "");
        assert!(load_certs(&empty).unwrap_err().to_string().contains("empty.pem holds no PEM certificate"));
        let junk = write(dir.path(), "junk.pem", "not a key");
        assert!(load_key(&junk).unwrap_err().to_string().contains("junk.pem holds no PEM private key"));
    }
}
