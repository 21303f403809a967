//! TLS flags shared by the listening commands.

use std::path::PathBuf;

use clap::Args;

use sockit::endpoint::{Endpoint, Host};
use sockit::tls::{CertSource, ClientTls, ClientTlsOptions, ServerTls};

/// `--tls-cert/--tls-key`, `--tls-self-signed`, `--client-ca`.
#[derive(Debug, Clone, Args)]
pub struct ServerTlsArgs {
    /// Serve TLS with this PEM certificate chain (leaf first); needs
    /// --tls-key. Reloaded on SIGHUP and when the file changes.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,

    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,

    /// Serve TLS with a certificate made at start for the listen addresses
    /// and localhost, for development; its SHA-256 fingerprint is printed.
    #[arg(long, conflicts_with = "tls_cert")]
    tls_self_signed: bool,

    /// Require a client certificate signed by a CA in this PEM file (mTLS).
    #[arg(long, value_name = "FILE")]
    client_ca: Option<PathBuf>,
}

impl ServerTlsArgs {
    /// Whether any TLS flag was given.
    pub fn is_set(&self) -> bool {
        self.tls_cert.is_some() || self.tls_self_signed || self.client_ca.is_some()
    }

    /// The TLS configuration these flags ask for, if any; `alpn` is what
    /// the service speaks.
    pub fn build(&self, listen: &[Endpoint], alpn: &[&[u8]]) -> sockit::Result<Option<ServerTls>> {
        let source = match (&self.tls_cert, &self.tls_key, self.tls_self_signed) {
            (Some(cert), Some(key), _) => CertSource::Files {
                cert: cert.clone(),
                key: key.clone(),
            },
            (_, _, true) => CertSource::SelfSigned {
                names: self_signed_names(listen),
            },
            _ => {
                if self.client_ca.is_some() {
                    return Err(sockit::Error::Usage(
                        "--client-ca needs TLS: add --tls-cert/--tls-key or --tls-self-signed"
                            .into(),
                    ));
                }
                return Ok(None);
            }
        };
        let self_signed = matches!(source, CertSource::SelfSigned { .. });
        let tls = ServerTls::new(
            source,
            self.client_ca.as_deref(),
            alpn.iter().map(|p| p.to_vec()).collect(),
        )?;
        if self_signed {
            // On stderr whatever the log level: it is what a client pins.
            eprintln!(
                "TLS self-signed certificate, SHA-256 fingerprint {}",
                tls.fingerprint()
            );
        }
        Ok(Some(tls))
    }
}

/// localhost, the loopback addresses and every host named in `--listen`.
fn self_signed_names(listen: &[Endpoint]) -> Vec<String> {
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    for endpoint in listen {
        if let Endpoint::Tcp(hp) = endpoint {
            let name = match &hp.host {
                Host::Name(name) => name.clone(),
                Host::Ip { addr, .. } => addr.to_string(),
                Host::Any => continue,
            };
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names
}

/// `--cacert`, `--insecure`, `--cert/--key`, `--alpn`, for `tls://` targets.
#[derive(Debug, Clone, Args)]
pub struct ClientTlsArgs {
    /// For tls://: trust only the CAs in this PEM file (default: the
    /// system's trust store).
    #[arg(long, value_name = "FILE")]
    cacert: Option<PathBuf>,

    /// For tls://: do not verify the server's certificate (a warning says
    /// so on stderr).
    #[arg(long, conflicts_with = "cacert")]
    insecure: bool,

    /// For tls://: present this PEM client certificate (mTLS); needs --key.
    #[arg(long, value_name = "FILE", requires = "key")]
    cert: Option<PathBuf>,

    /// The PEM private key of --cert.
    #[arg(long, value_name = "FILE", requires = "cert")]
    key: Option<PathBuf>,

    /// For tls://: ALPN protocols to offer, comma-separated (e.g. http/1.1).
    #[arg(long, value_name = "PROTOS", value_delimiter = ',')]
    alpn: Vec<String>,
}

impl ClientTlsArgs {
    /// The client TLS configuration for `target`, when it is `tls://`.
    pub fn build(&self, target: &Endpoint) -> sockit::Result<Option<ClientTls>> {
        let given =
            self.cacert.is_some() || self.insecure || self.cert.is_some() || !self.alpn.is_empty();
        if !matches!(target, Endpoint::Tls(_)) {
            if given {
                return Err(sockit::Error::Usage(format!(
                    "--cacert, --insecure, --cert and --alpn apply to tls:// targets, not {target}"
                )));
            }
            return Ok(None);
        }
        if self.insecure {
            eprintln!("warning: --insecure: the server's certificate is NOT verified; anyone on the path can read and change this connection");
        }
        ClientTls::new(&ClientTlsOptions {
            cacert: self.cacert.clone(),
            insecure: self.insecure,
            cert: self.cert.clone(),
            key: self.key.clone(),
            alpn: self.alpn.iter().map(|p| p.as_bytes().to_vec()).collect(),
        })
        .map(Some)
    }
}
