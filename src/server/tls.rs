//! TLS on a listener of its own (rustls): certificate and key from PEM files, optional or
//! required client certificates verified against the configured trust anchors, the client's
//! certificate handed to the request for whitelisting and fairness.
//!
//! Plain HTTP stays available (`server.listen`) for a TLS-terminating load balancer.

use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{ClientAuth, TlsConfig, TrustConfig};

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("TLS {what} {path}: {reason}")]
    Pem { what: &'static str, path: String, reason: String },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// Builds the rustls server configuration.
pub fn server_config(tls: &TlsConfig, trust: &TrustConfig) -> Result<Arc<ServerConfig>, TlsError> {
    let pem_err = |what, path: &std::path::Path| {
        let path = path.display().to_string();
        move |e: rustls_pki_types::pem::Error| TlsError::Pem { what, path, reason: format!("{e:?}") }
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.certificate)
        .map_err(pem_err("certificate", &tls.certificate))?
        .collect::<Result<_, _>>()
        .map_err(pem_err("certificate", &tls.certificate))?;
    if chain.is_empty() {
        return Err(TlsError::Pem {
            what: "certificate",
            path: tls.certificate.display().to_string(),
            reason: "no CERTIFICATE block".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(&tls.key).map_err(pem_err("key", &tls.key))?;

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match tls.client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Optional | ClientAuth::Required => {
            let mut roots = RootCertStore::empty();
            for path in &trust.anchors {
                for cert in crate::trust::read_pem_certificates(path)
                    .map_err(|e| TlsError::Config(format!("client CA {}: {e}", path.display())))?
                {
                    roots
                        .add(cert)
                        .map_err(|e| TlsError::Config(format!("client CA {}: {e}", path.display())))?;
                }
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if tls.client_auth == ClientAuth::Optional {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(verifier.build().map_err(|e| TlsError::Config(e.to_string()))?)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Config(format!("certificate and key: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The client certificate of an established TLS connection, if it presented one.
pub fn client_certificate<S>(stream: &futures_rustls::server::TlsStream<S>) -> Option<Arc<[u8]>> {
    let (_, conn) = stream.get_ref();
    conn.peer_certificates().and_then(|certs| certs.first()).map(|c| Arc::from(c.as_ref()))
}
