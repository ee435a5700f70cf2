//! Errors of the federation transport.

/// Why the federation could not start or a link failed.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The TLS configuration could not be built from the node key.
    #[error("TLS setup failed: {0}")]
    Tls(String),
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
    Mdns(String),
    /// The system's random number source failed.
    #[error("cannot draw random numbers: {0}")]
    Random(String),
    /// A connection failed.
    #[error("connection failed: {0}")]
    Connect(String),
}
