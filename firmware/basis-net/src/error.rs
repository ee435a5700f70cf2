//! Errors of the federation transport.

/// Why the federation could not start.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The node key could not be encoded for TLS.
    #[error("TLS setup failed: the node key cannot be encoded: {0}")]
    KeyEncoding(#[from] basis_core::keys::KeyError),
    /// The TLS configuration could not be built from the node key.
    #[error("TLS setup failed: {0}")]
    Tls(#[from] rustls::Error),
    /// The TLS configuration has no cipher suite QUIC can use.
    #[error("TLS setup failed: no cipher suite QUIC can use: {0}")]
    NoQuicSuite(#[from] quinn::crypto::rustls::NoInitialCipherSuite),
    /// The UDP port could not be bound.
    #[error("cannot listen on UDP port {port}: {source}")]
    Bind {
        /// The port.
        port: u16,
        /// Why.
        source: std::io::Error,
    },
    /// mDNS could not start.
    #[error("mDNS discovery failed: {0}")]
    Mdns(#[from] mdns_sd::Error),
    /// A thread of the federation could not start.
    #[error("cannot start the {name} thread: {source}")]
    Thread {
        /// Which thread.
        name: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// The system's random number source failed.
    #[error("cannot draw random numbers: {0}")]
    Random(getrandom::Error),
}
