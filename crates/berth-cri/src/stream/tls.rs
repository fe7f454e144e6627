//! TLS for the stream server, as containerd configures it:
//! `enable_tls_streaming` with `x509_key_pair_streaming`'s `tls_cert_file`
//! and `tls_key_file` (PEM), or without them a self-signed certificate
//! made at start-up; a key pair set without `enable_tls_streaming`, or
//! half a pair, is an error.

use crate::CriConfig;
use berth_core::{Error, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;

/// The acceptor the settings ask for, or `None` for plain HTTP.
pub(super) fn acceptor(config: &CriConfig) -> Result<Option<TlsAcceptor>> {
    let (cert, key) = (&config.tls_cert_file, &config.tls_key_file);
    let invalid = |what: &str| {
        Err(Error::invalid_argument(format!(
            "invalid stream server configuration: {what}"
        )))
    };
    if !config.enable_tls_streaming {
        if !cert.is_empty() {
            return invalid("tls_cert_file is set but enable_tls_streaming is not set");
        }
        if !key.is_empty() {
            return invalid("tls_key_file is set but enable_tls_streaming is not set");
        }
        return Ok(None);
    }
    let (chain, key) = match (cert.is_empty(), key.is_empty()) {
        (false, false) => load(cert, key)?,
        (false, true) => return invalid("must set x509_key_pair_streaming.tls_key_file"),
        (true, false) => return invalid("must set x509_key_pair_streaming.tls_cert_file"),
        (true, true) => self_signed()?,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key))
        .map_err(|e| Error::invalid_argument(format!("stream server TLS: {e}")))?;
    Ok(Some(TlsAcceptor::from(Arc::new(server))))
}

type KeyPair = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

fn load(cert: &str, key: &str) -> Result<KeyPair> {
    let failed = |e: &dyn std::fmt::Display| {
        Error::invalid_argument(format!(
            "failed to load x509 key pair for stream server ({cert}, {key}): {e}"
        ))
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| failed(&e))?;
    if chain.is_empty() {
        return Err(failed(&"no certificate in the file"));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| failed(&e))?;
    Ok((chain, key))
}

/// A certificate for this host, as containerd makes one (its clients
/// skip verification of it).
fn self_signed() -> Result<KeyPair> {
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into());
    let made = rcgen::generate_simple_self_signed(vec![host, "localhost".into()]).map_err(|e| {
        Error::internal(format!(
            "failed to generate tls certificate for stream server: {e}"
        ))
    })?;
    let key = PrivateKeyDer::try_from(made.signing_key.serialize_der())
        .map_err(|e| Error::internal(format!("stream server key: {e}")))?;
    Ok((vec![made.cert.der().clone()], key))
}
