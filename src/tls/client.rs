//! The client side: whom to trust, what to present, and the handshake.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;
use tracing::debug;

use super::server::{load_certs, load_key, load_roots};
use super::{provider, TlsConn};
use crate::error::{Error, Result};

/// How a client sets up TLS.
#[derive(Debug, Clone, Default)]
pub struct ClientTlsOptions {
    /// Trust only the CAs in this PEM file, instead of the system's.
    pub cacert: Option<PathBuf>,
    /// Do not verify the server's certificate at all.
    pub insecure: bool,
    /// A client certificate chain (PEM) to present, for mTLS; with `key`.
    pub cert: Option<PathBuf>,
    /// The private key of `cert`.
    pub key: Option<PathBuf>,
    /// ALPN protocols to offer (RFC 7301), in order of preference.
    pub alpn: Vec<Vec<u8>>,
}

/// A client's TLS configuration, built once per command.
#[derive(Debug, Clone)]
pub struct ClientTls {
    config: Arc<ClientConfig>,
}

impl ClientTls {
    /// Builds the configuration. Verification is on unless
    /// `opts.insecure`: against `opts.cacert`, or the system's roots
    /// (rustls-native-certs), or, when the system has none, the Mozilla
    /// roots compiled in (webpki-roots).
    ///
    /// # Errors
    ///
    /// [`Error::TlsFile`] for a file that cannot be used, [`Error::Tls`]
    /// for a configuration rustls refuses.
    pub fn new(opts: &ClientTlsOptions) -> Result<ClientTls> {
        let provider = provider();
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(Error::Tls)?;
        let builder = if opts.insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
        } else {
            let roots = match &opts.cacert {
                Some(path) => load_roots(path)?,
                None => system_roots(),
            };
            builder.with_root_certificates(roots)
        };
        let mut config = match (&opts.cert, &opts.key) {
            (Some(cert), Some(key)) => builder
                .with_client_auth_cert(load_certs(cert)?, load_key(key)?)
                .map_err(Error::Tls)?,
            _ => builder.with_no_client_auth(),
        };
        config.alpn_protocols = opts.alpn.clone();
        Ok(ClientTls {
            config: Arc::new(config),
        })
    }

    /// Runs the handshake over `io` with SNI `host` (an IP literal sends
    /// none, RFC 6066 §3) and checks the certificate is valid for it.
    ///
    /// # Errors
    ///
    /// [`Error::TlsHandshake`]: an untrusted, expired or wrong-name
    /// certificate, a peer that does not speak TLS.
    pub async fn connect<S>(
        &self,
        host: &str,
        addr: &str,
        io: S,
    ) -> Result<TlsConn<tokio_rustls::client::TlsStream<S>>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let name = ServerName::try_from(host.to_owned()).map_err(|e| Error::TlsHandshake {
            addr: addr.to_owned(),
            source: io::Error::new(io::ErrorKind::InvalidInput, e),
        })?;
        let stream = TlsConnector::from(self.config.clone())
            .connect(name, io)
            .await
            .map_err(|source| Error::TlsHandshake {
                addr: addr.to_owned(),
                source,
            })?;
        Ok(TlsConn::new(stream))
    }
}

/// The system's trust roots, or webpki-roots when it has none.
fn system_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for err in &found.errors {
        debug!("system trust store: {err}");
    }
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        debug!("no system trust roots: using the webpki-roots set");
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    roots
}

/// `--insecure`: every certificate passes; signatures are still checked so
/// the handshake itself stays sound.
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
