//! The local control socket: how admin commands on the same board talk to the running node.
//!
//! A Unix stream socket in the data directory (mode 0600, so only the node's user may use it),
//! carrying newline-delimited JSON: one request per line, one reply per line, in order.
//! It is for the board's administrator; phones and laptops use the client API instead. The
//! wire types are `basis_api::admin`; [`wire`] turns the node's state into them.

pub mod client;
pub mod server;
pub mod wire;
