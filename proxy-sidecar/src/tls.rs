//! Upstream TLS client configuration (rustls with the `ring` provider).
//!
//! Trust: the Mozilla roots compiled in (`webpki-roots`, so the runtime image needs
//! no CA bundle) plus any extra CA certificates from the config (private CAs, tests).
//! The provider is chosen explicitly so the result does not depend on which rustls
//! crypto features other crates in the build enable.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

use crate::config::{ConfigError, TlsSettings};

/// Build the shared upstream TLS client config.
pub fn client_config(settings: &TlsSettings) -> Result<Arc<ClientConfig>, ConfigError> {
    let mut roots = RootCertStore::empty();
    if settings.webpki_roots {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    let mut extra: Vec<CertificateDer<'static>> = Vec::new();
    for path in &settings.extra_ca_files {
        let pem = std::fs::read(path).map_err(|source| ConfigError::CaFile {
            path: path.clone(),
            source,
        })?;
        let certs =
            parse_pem(&pem).map_err(|e| ConfigError::Tls(format!("{}: {e}", path.display())))?;
        extra.extend(certs);
    }
    for (i, pem) in settings.extra_ca_pem.iter().enumerate() {
        let certs = parse_pem(pem.as_bytes())
            .map_err(|e| ConfigError::Tls(format!("tls.extra_ca_pem[{i}]: {e}")))?;
        extra.extend(certs);
    }
    for cert in extra {
        roots
            .add(cert)
            .map_err(|e| ConfigError::Tls(format!("rejected CA certificate: {e}")))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn parse_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("invalid PEM: {e}"))?;
    if certs.is_empty() {
        return Err("no CERTIFICATE block found".into());
    }
    Ok(certs)
}
