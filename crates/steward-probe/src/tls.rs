//! A TLS handshake that keeps the peer's certificate even when verification refuses it, so a
//! `tls` check can report an expired or self-signed certificate's expiry, not just "failed".

use std::sync::{Arc, Mutex, OnceLock};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;

/// What a handshake produced.
pub(super) struct Handshake {
    /// The peer's end-entity certificate (DER), if it sent one.
    pub peer: Option<Vec<u8>>,
    /// Why the handshake failed, if it did.
    pub error: Option<String>,
}

/// Performs a TLS handshake over `stream` for `server_name`, verifying the chain against the
/// bundled web roots when `verify` is set.
pub(super) async fn handshake(stream: TcpStream, server_name: &str, verify: bool) -> Handshake {
    let name = match ServerName::try_from(server_name.to_owned()) {
        Ok(name) => name,
        Err(error) => {
            return Handshake {
                peer: None,
                error: Some(format!("server name `{server_name}`: {error}")),
            };
        }
    };
    let shared = match shared() {
        Ok(shared) => shared,
        Err(error) => {
            return Handshake {
                peer: None,
                error: Some(error.clone()),
            };
        }
    };
    let recorder = Arc::new(Recorder {
        inner: verify.then(|| Arc::clone(&shared.verifier)),
        provider: Arc::clone(&shared.provider),
        seen: Mutex::new(None),
    });
    let config = match rustls::ClientConfig::builder_with_provider(Arc::clone(&shared.provider))
        .with_safe_default_protocol_versions()
    {
        Ok(builder) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::clone(&recorder) as Arc<dyn ServerCertVerifier>)
            .with_no_client_auth(),
        Err(error) => {
            return Handshake {
                peer: None,
                error: Some(error.to_string()),
            };
        }
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let error = connector
        .connect(name, stream)
        .await
        .err()
        .map(|e| e.to_string());
    let peer = recorder.seen.lock().ok().and_then(|mut seen| seen.take());
    Handshake { peer, error }
}

/// The crypto provider and the web-roots verifier, built once.
struct Shared {
    provider: Arc<CryptoProvider>,
    verifier: Arc<WebPkiServerVerifier>,
}

fn shared() -> Result<&'static Shared, &'static String> {
    static SHARED: OnceLock<Result<Shared, String>> = OnceLock::new();
    SHARED
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            let verifier =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                    .build()
                    .map_err(|e| format!("cannot build the certificate verifier: {e}"))?;
            Ok(Shared { provider, verifier })
        })
        .as_ref()
}

/// Records the end-entity certificate, then verifies it (or accepts it when verification is
/// off). Signatures are always checked, so the handshake is a real one.
#[derive(Debug)]
struct Recorder {
    inner: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
    seen: Mutex<Option<Vec<u8>>>,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some(end_entity.to_vec());
        }
        match &self.inner {
            Some(verifier) => verifier.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ),
            None => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
