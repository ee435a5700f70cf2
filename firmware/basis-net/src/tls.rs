//! TLS 1.3 with raw public keys (RFC 7250) for QUIC: each node presents its ed25519 node key
//! and proves possession in the handshake; certificates and authorities play no part.

use std::sync::Arc;

use basis_core::{NodeId, NodeKey};
use ed25519_dalek::pkcs8::DecodePublicKey;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls13_signature_with_raw_key};
use rustls::pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, SubjectPublicKeyInfoDer,
    UnixTime,
};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

use crate::error::NetError;

/// Reads the node id from a peer's raw public key (an ed25519 SubjectPublicKeyInfo).
pub fn node_id_of(spki: &[u8]) -> Option<NodeId> {
    ed25519_dalek::VerifyingKey::from_public_key_der(spki)
        .ok()
        .map(|k| NodeId(k.to_bytes()))
}

/// Accepts any ed25519 raw public key and checks the handshake signature with it. Which keys
/// are welcome is decided after the handshake (admission), where the reason can be logged.
#[derive(Debug)]
struct RawKeyVerifier {
    algorithms: WebPkiSupportedAlgorithms,
}

fn tls_error(what: &str) -> rustls::Error {
    rustls::Error::General(what.to_string())
}

impl RawKeyVerifier {
    fn check_key(&self, end_entity: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        node_id_of(end_entity.as_ref())
            .map(|_| ())
            .ok_or_else(|| tls_error("the peer's key is not an ed25519 public key"))
    }

    fn verify13(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let spki = SubjectPublicKeyInfoDer::from(cert.as_ref());
        verify_tls13_signature_with_raw_key(message, &spki, dss, &self.algorithms)
    }
}

/// The signature methods both verifier traits share: TLS 1.3 only, ed25519 only, raw keys only.
macro_rules! signature_methods {
    () => {
        fn verify_tls12_signature(
            &self,
            _message: &[u8],
            _cert: &CertificateDer<'_>,
            _dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Err(tls_error("TLS 1.2 is not used"))
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.verify13(message, cert, dss)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            vec![SignatureScheme::ED25519]
        }

        fn requires_raw_public_keys(&self) -> bool {
            true
        }
    };
}

impl ServerCertVerifier for RawKeyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check_key(end_entity)?;
        Ok(ServerCertVerified::assertion())
    }

    signature_methods!();
}

impl ClientCertVerifier for RawKeyVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.check_key(end_entity)?;
        Ok(ClientCertVerified::assertion())
    }

    signature_methods!();
}

/// The QUIC client and server crypto configurations of a node.
pub struct TlsConfigs {
    /// For dialling.
    pub client: QuicClientConfig,
    /// For accepting.
    pub server: QuicServerConfig,
}

/// A quinn client configuration for dialling Basis nodes with `key` (used by the service, and
/// by tests that play a peer).
pub fn client_config(key: &NodeKey) -> Result<quinn::ClientConfig, NetError> {
    let configs = configs(key, basis_proto::ALPN)?;
    Ok(quinn::ClientConfig::new(Arc::new(configs.client)))
}

/// Builds both configurations from the node key.
pub fn configs(key: &NodeKey, alpn: &[u8]) -> Result<TlsConfigs, NetError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let der = key.to_pkcs8_der().map_err(NetError::KeyEncoding)?;
    let signer = provider
        .key_provider
        .load_private_key(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der)))?;
    let spki = signer.public_key().ok_or(rustls::Error::InconsistentKeys(
        rustls::InconsistentKeys::Unknown,
    ))?;
    let certified = Arc::new(CertifiedKey::new(
        vec![CertificateDer::from(spki.as_ref().to_vec())],
        signer,
    ));
    let verifier = Arc::new(RawKeyVerifier {
        algorithms: provider.signature_verification_algorithms,
    });

    let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier.clone())
        .with_cert_resolver(Arc::new(
            rustls::server::AlwaysResolvesServerRawPublicKeys::new(certified.clone()),
        ));
    server.alpn_protocols = vec![alpn.to_vec()];

    let mut client = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_cert_resolver(Arc::new(
            rustls::client::AlwaysResolvesClientRawPublicKeys::new(certified),
        ));
    client.alpn_protocols = vec![alpn.to_vec()];

    Ok(TlsConfigs {
        client: QuicClientConfig::try_from(client)?,
        server: QuicServerConfig::try_from(server)?,
    })
}
