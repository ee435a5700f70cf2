//! The integration tests that start `basis` processes on this host (loopback, temporary
//! directories), as one test binary: each file stays where it is and is a module here, so
//! they are linked once. `cargo test -p basis --test node_tests crash::` runs one file's
//! tests.

#[path = "api_client.rs"]
mod api_client;
#[path = "common/mod.rs"]
mod common;

#[path = "api.rs"]
mod api;
#[path = "api_schema.rs"]
mod api_schema;
#[path = "bad_input.rs"]
mod bad_input;
#[path = "bench.rs"]
mod bench;
#[path = "browser.rs"]
mod browser;
#[path = "clocks.rs"]
mod clocks;
#[path = "crash.rs"]
mod crash;
#[path = "daemon.rs"]
mod daemon;
#[path = "files.rs"]
mod files;
#[path = "full_disk.rs"]
mod full_disk;
#[path = "hostile_peer.rs"]
mod hostile_peer;
#[path = "in_process.rs"]
mod in_process;
#[path = "known_peers.rs"]
mod known_peers;
#[path = "provision.rs"]
mod provision;
#[path = "systemd.rs"]
mod systemd;
