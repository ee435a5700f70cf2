//! The federation transport of a Basis node.
//!
//! QUIC links (quinn) authenticated with raw public keys (rustls, RFC 7250): a node's TLS key
//! is its node key, so a peer is identified by key, never by DNS or a certificate authority.
//! Each link runs the sans-IO protocol of `basis-proto`; this crate moves its frames, stores
//! what it receives through the store's writer, streams what it is asked for, discovers
//! nodes with mDNS and keeps the table that `basis peers` shows.

mod addr;
mod bridge;
mod closing;
mod context;
mod dialler;
mod discovery;
mod driver;
mod endpoint;
mod error;
mod files;
mod peers;
mod registry;
mod service;
pub mod tls;
mod upstream;
mod wan;

pub use addr::StaticPeer;
pub use basis_proto::bridge_link::RoomSnapshot;
pub use bridge::{BridgeSnapshot, UpstreamSettings, UpstreamSnapshot, UpstreamState};
pub use discovery::{Discovery, SERVICE_TYPE};
pub use error::NetError;
pub use files::PolicyFn;
pub use peers::{Found, PeerSnapshot, PeerState, Refusal};
pub use service::{Federation, FederationSettings};
pub use wan::WanView;
