//! The server side: which certificate to present, whose certificates to
//! require, and the handshake that runs inside each connection's task.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::SystemTime;

use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};
use tokio_rustls::TlsAcceptor;
use tracing::{info, warn};

use super::{provider, TlsConn};
use crate::conn::{ConnReport, Connection};
use crate::error::{Error, Result, TlsFileError};
use crate::server::handler::{Accepted, Handler};

/// Where the server's certificate comes from.
#[derive(Debug, Clone)]
pub enum CertSource {
    /// A PEM certificate chain and its PEM private key, reloaded when they
    /// change.
    Files {
        /// The certificate chain, leaf first.
        cert: PathBuf,
        /// The private key (PKCS#8, PKCS#1 or SEC1).
        key: PathBuf,
    },
    /// A certificate made now for these DNS names and IP addresses, signed
    /// by itself: for development, where clients pin its fingerprint or
    /// pass `--insecure`.
    SelfSigned {
        /// Subject alternative names.
        names: Vec<String>,
    },
}

/// A server's TLS configuration: build once, hand to
/// [`Builder::tls`](crate::server::Builder::tls).
#[derive(Debug, Clone)]
pub struct ServerTls {
    config: Arc<ServerConfig>,
    cert: Arc<ReloadingCert>,
}

impl ServerTls {
    /// Loads (or makes) the certificate and builds the configuration.
    /// `client_ca`: a PEM file of CAs; when given, every client must present
    /// a certificate one of them signed. `alpn`: the protocols offered, in
    /// order of preference (RFC 7301).
    ///
    /// # Errors
    ///
    /// [`Error::TlsFile`] for a file that cannot be read or holds no usable
    /// certificate or key, [`Error::Tls`] for a configuration rustls refuses.
    pub fn new(source: CertSource, client_ca: Option<&Path>, alpn: Vec<Vec<u8>>) -> Result<Self> {
        let provider = provider();
        let cert = Arc::new(ReloadingCert::new(source)?);
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(Error::Tls)?;
        let builder = match client_ca {
            Some(path) => {
                let roots = Arc::new(load_roots(path)?);
                let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider)
                    .build()
                    .map_err(|e| Error::TlsFile {
                        what: "client CA",
                        path: path.display().to_string(),
                        source: TlsFileError::Verifier(e),
                    })?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_cert_resolver(cert.clone());
        config.alpn_protocols = alpn;
        Ok(ServerTls {
            config: Arc::new(config),
            cert,
        })
    }

    /// The SHA-256 fingerprint of the certificate presented now, as
    /// `AB:CD:…` (what `openssl x509 -fingerprint -sha256` prints).
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.cert.current().cert[0])
    }

    /// Loads the certificate files again and presents the new pair to the
    /// next handshakes; open connections keep theirs. A self-signed
    /// certificate has nothing to reload.
    ///
    /// # Errors
    ///
    /// As [`ServerTls::new`]; the certificate in use is kept.
    pub fn reload(&self) -> Result<bool> {
        self.cert.reload()
    }

    /// Reloads on SIGHUP and when the files' modification times change
    /// (checked every second), logging each outcome, until dropped.
    ///
    /// # Errors
    ///
    /// The SIGHUP handler cannot be installed.
    pub(crate) fn watch(&self) -> io::Result<Option<tokio::task::JoinHandle<()>>> {
        if !matches!(self.cert.source, CertSource::Files { .. }) {
            return Ok(None);
        }
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        let cert = self.cert.clone();
        Ok(Some(tokio::spawn(async move {
            let mut seen = cert.modified();
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            loop {
                let why = tokio::select! {
                    _ = hup.recv() => "SIGHUP",
                    _ = tick.tick() => {
                        let now = cert.modified();
                        if now == seen { continue; }
                        seen = now;
                        "the files changed"
                    }
                };
                match cert.reload() {
                    Ok(_) => info!(
                        "TLS certificate reloaded ({why}): fingerprint {}",
                        fingerprint(&cert.current().cert[0])
                    ),
                    Err(err) => warn!("{err}; kept the certificate in use ({why})"),
                }
            }
        })))
    }

    /// The server side of the handshake over `io`, for a caller that runs
    /// its own connection (`sockit listen`), bounded by the header timeout.
    pub(crate) async fn accept<Io: Connection>(
        &self,
        io: Io,
    ) -> io::Result<TlsConn<tokio_rustls::server::TlsStream<Io>>> {
        let limit = crate::conn::limits::DEFAULT_HEADER_TIMEOUT;
        match tokio::time::timeout(limit, TlsAcceptor::from(self.config.clone()).accept(io)).await {
            Ok(Ok(stream)) => Ok(TlsConn::new(stream)),
            Ok(Err(err)) => Err(io::Error::new(err.kind(), handshake_failure(&err))),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("not finished within {}s", limit.as_secs_f64()),
            )),
        }
    }

    /// Wraps `inner`: each connection's handshake first, then `inner`.
    pub(crate) fn handler<H>(&self, inner: Arc<H>) -> TlsHandler<H> {
        TlsHandler {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The certificate in use, swapped whole on reload (rustls#2511: a pair
/// that fails to load leaves the old one in place).
#[derive(Debug)]
struct ReloadingCert {
    source: CertSource,
    current: RwLock<Arc<CertifiedKey>>,
}

impl ReloadingCert {
    fn new(source: CertSource) -> Result<Self> {
        let current = RwLock::new(load(&source)?);
        Ok(ReloadingCert { source, current })
    }

    fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn reload(&self) -> Result<bool> {
        if !matches!(self.source, CertSource::Files { .. }) {
            return Ok(false);
        }
        let fresh = load(&self.source)?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = fresh;
        Ok(true)
    }

    fn modified(&self) -> Vec<Option<SystemTime>> {
        match &self.source {
            CertSource::Files { cert, key } => [cert, key]
                .iter()
                .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
                .collect(),
            CertSource::SelfSigned { .. } => Vec::new(),
        }
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

fn load(source: &CertSource) -> Result<Arc<CertifiedKey>> {
    let (certs, key) = match source {
        CertSource::Files { cert, key } => (load_certs(cert)?, load_key(key)?),
        CertSource::SelfSigned { names } => {
            let made =
                rcgen::generate_simple_self_signed(names.clone()).map_err(|e| Error::TlsFile {
                    what: "self-signed certificate",
                    path: names.join(","),
                    source: TlsFileError::Generate(e),
                })?;
            let key = PrivatePkcs8KeyDer::from(made.key_pair.serialize_der());
            (vec![made.cert.der().clone()], PrivateKeyDer::Pkcs8(key))
        }
    };
    let key_path = key_origin(source);
    let signing = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| Error::TlsFile {
            what: "private key",
            path: key_path,
            source: TlsFileError::Rejected(e),
        })?;
    let certified = CertifiedKey::new(certs, signing);
    // A certificate renamed into place before its key (or the reverse) is
    // refused here, so the old pair stays until both files are new.
    certified.keys_match().map_err(|e| Error::TlsFile {
        what: "private key (it does not match the certificate)",
        path: key_origin(source),
        source: TlsFileError::Rejected(e),
    })?;
    Ok(Arc::new(certified))
}

/// Where the key came from, for messages.
fn key_origin(source: &CertSource) -> String {
    match source {
        CertSource::Files { key, .. } => key.display().to_string(),
        CertSource::SelfSigned { names } => names.join(","),
    }
}

/// Reads a PEM certificate chain (at least one certificate).
pub(crate) fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let fail = |source| Error::TlsFile {
        what: "certificate",
        path: path.display().to_string(),
        source,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(Iterator::collect::<std::result::Result<Vec<_>, _>>)
        .map_err(|e| fail(TlsFileError::Pem(e)))?;
    if certs.is_empty() {
        return Err(fail(TlsFileError::NoCertificate));
    }
    Ok(certs)
}

/// Reads a PEM private key.
pub(crate) fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| Error::TlsFile {
        what: "private key",
        path: path.display().to_string(),
        source: TlsFileError::Pem(e),
    })
}

/// Reads a PEM file of trusted CA certificates.
pub(crate) fn load_roots(path: &Path) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path)? {
        roots.add(cert).map_err(|e| Error::TlsFile {
            what: "CA certificate",
            path: path.display().to_string(),
            source: TlsFileError::Rejected(e),
        })?;
    }
    Ok(roots)
}

/// `AB:CD:…`, the SHA-256 of a certificate's DER.
pub(crate) fn fingerprint(cert: &CertificateDer<'_>) -> String {
    let digest = Sha256::digest(cert.as_ref());
    let mut text = String::with_capacity(digest.len() * 3);
    for (i, byte) in digest.iter().enumerate() {
        if i > 0 {
            text.push(':');
        }
        let _ = write!(text, "{byte:02X}");
    }
    text
}

/// Runs the TLS handshake inside the connection's task (never in the
/// accept loop), within the header timeout, then hands the decrypted
/// stream to the inner handler, so TLS connections share the accept loop,
/// limits and guarded I/O of plain ones.
#[derive(Debug)]
pub(crate) struct TlsHandler<H> {
    inner: Arc<H>,
    config: Arc<ServerConfig>,
}

impl<H, Io> Handler<Io> for TlsHandler<H>
where
    Io: Connection,
    H: Handler<TlsConn<tokio_rustls::server::TlsStream<Io>>>,
{
    #[allow(clippy::manual_async_fn)] // the trait asks for a `Send` future
    fn handle(
        &self,
        io: Io,
        accepted: Accepted,
    ) -> impl std::future::Future<Output = ConnReport> + Send {
        async move {
            let failed = ConnReport {
                requests: 0,
                error: true,
            };
            let limit = accepted.limits.header_timeout;
            let handshake = tokio::select! {
                biased;
                () = accepted.shutdown.cancelled() => return ConnReport::default(),
                done = tokio::time::timeout(limit, TlsAcceptor::from(self.config.clone()).accept(io)) => done,
            };
            match handshake {
                Ok(Ok(stream)) => self.inner.handle(TlsConn::new(stream), accepted).await,
                Ok(Err(err)) => {
                    warn!(
                        "TLS handshake with {} failed: {}",
                        accepted.peer,
                        handshake_failure(&err)
                    );
                    failed
                }
                Err(_) => {
                    warn!(
                        "TLS handshake with {} failed: not finished within the header timeout ({}s)",
                        accepted.peer,
                        limit.as_secs_f64()
                    );
                    failed
                }
            }
        }
    }
}

/// Why a handshake failed, in the words an operator searches for.
pub(crate) fn handshake_failure(err: &io::Error) -> String {
    use rustls::Error as E;
    let Some(tls) = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    else {
        return match err.kind() {
            io::ErrorKind::UnexpectedEof => {
                "the peer closed the connection during the handshake".into()
            }
            _ => err.to_string(),
        };
    };
    match tls {
        E::InvalidMessage(_) => format!("not TLS ({tls})"),
        E::PeerIncompatible(_) => format!("wrong version or no common cipher suite ({tls})"),
        E::AlertReceived(alert) => format!("the peer refused the handshake: alert {alert:?}"),
        E::NoCertificatesPresented => "bad certificate: the client presented none".into(),
        E::InvalidCertificate(_) => format!("bad certificate: {tls}"),
        other => other.to_string(),
    }
}
