//! `basis`: the node daemon (`basis run`), its admin tools and the chat client, as a library
//! with a thin `main.rs`, so that the client API, the chat client and the admin commands can
//! be tested in-process.
//!
//! The wire types of the client API and the admin socket are in `basis_api`; the protocol
//! decisions are in the sans-IO crates (`basis_core`, `basis_proto`, `basis_e2ee`); this crate
//! moves bytes between them, the store, the network and the user.

pub mod api;
pub mod bench;
pub mod cli;
pub mod client;
pub mod commands;
pub mod control;
pub mod daemon;
pub mod datadir;
pub mod dispatch;
pub mod federation;
pub mod files;
pub mod identity;
pub mod logging;
pub mod node;
pub mod notify;
pub mod provision;
pub mod running;
pub mod settings;

pub use dispatch::main;
