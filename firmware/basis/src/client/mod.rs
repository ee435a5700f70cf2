//! The client side of the `basis` binary: the user's key and contacts on this computer, a
//! connection to a node's client API, end-to-end encryption of rooms, and the chat commands.
//!
//! Nothing here needs the node's configuration: these commands run on a laptop as well as on
//! the board.

pub mod compose;
pub mod contacts;
pub mod crypto;
pub mod directory;
pub mod discover;
pub mod node_client;
pub mod profile;
pub mod render;
pub mod resolve;
pub mod session;
pub mod view;
