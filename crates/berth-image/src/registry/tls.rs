//! TLS for registry connections: rustls on ring, trusting the system roots
//! plus configured CA files, or verifying nothing when asked to skip.

use std::path::PathBuf;
use std::sync::{Arc, LazyLock};

use berth_core::{Error, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// The system's CA certificates, read once per process (reading
/// `/etc/ssl/certs` costs milliseconds).
static SYSTEM_ROOTS: LazyLock<Vec<CertificateDer<'static>>> = LazyLock::new(|| {
    let found = rustls_native_certs::load_native_certs();
    for err in &found.errors {
        tracing::debug!(error = %err, "loading a system CA certificate");
    }
    found.certs
});

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// TLS settings for one host; equal settings share one HTTP client.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct TlsSettings {
    pub ca_files: Vec<PathBuf>,
    pub skip_verify: bool,
    /// The client certificate and its key (`None`: in the same file).
    pub client: Option<(PathBuf, Option<PathBuf>)>,
}

/// A rustls client config trusting the system roots and the CA files, or
/// trusting anything when `skip_verify` is set, and presenting the client
/// certificate when there is one.
pub(crate) fn client_config(tls: &TlsSettings) -> Result<ClientConfig> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::internal(format!("tls protocol versions: {e}")))?;
    let verified = if tls.skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
    } else {
        builder.with_root_certificates(roots(&tls.ca_files)?)
    };
    match &tls.client {
        None => Ok(verified.with_no_client_auth()),
        Some((cert, key)) => {
            let certs = read_certs(cert)?;
            let key_file = key.as_ref().unwrap_or(cert);
            let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| {
                Error::invalid_argument(format!(
                    "unable to read client key {}: {e}",
                    key_file.display()
                ))
            })?;
            verified.with_client_auth_cert(certs, key).map_err(|e| {
                Error::invalid_argument(format!("client certificate {}: {e}", cert.display()))
            })
        }
    }
}

fn read_certs(file: &PathBuf) -> Result<Vec<CertificateDer<'static>>> {
    CertificateDer::pem_file_iter(file)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            Error::invalid_argument(format!("unable to read cert {}: {e}", file.display()))
        })
}

fn roots(ca_files: &[PathBuf]) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(SYSTEM_ROOTS.iter().cloned());
    for file in ca_files {
        let certs = read_certs(file).map_err(|e| e.context("CA"))?;
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(Error::invalid_argument(format!(
                "unable to load CA cert {}: no certificate in it",
                file.display()
            )));
        }
    }
    Ok(roots)
}

/// Accepts any certificate (`skip_verify`), still checking that the
/// handshake signatures are valid for the certificate presented.
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
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
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
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

/// Whether a request failed in the TLS handshake because the server does
/// not speak TLS (containerd's HTTP fallback condition): a rustls error
/// somewhere in the chain, which may hide inside `io::Error`s (their
/// `source()` skips the error they wrap).
pub(crate) fn is_tls_handshake_error(err: &reqwest::Error) -> bool {
    chain_has_rustls(err)
}

fn chain_has_rustls(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if e.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            if chain_has_rustls(inner) {
                return true;
            }
        }
        source = e.source();
    }
    false
}
