//! The integration tests that start nodes in the network-namespace lab (`tests/lab/`), as one
//! test binary: each file stays where it is and is a module here, so they are linked once.
//! Needs root and the lab's tools; `lab_or_skip!` fails under `CI` instead of skipping.
//! `cargo test -p basis --test lab_tests bridge::` runs one file's tests.

#[path = "common/mod.rs"]
mod common;
#[path = "lab/mod.rs"]
mod lab;
#[path = "lab_node.rs"]
mod lab_node;

#[path = "bridge.rs"]
mod bridge;
#[path = "chaos.rs"]
mod chaos;
#[path = "chat.rs"]
mod chat;
#[path = "federation.rs"]
mod federation;
#[path = "files_lab.rs"]
mod files_lab;
#[path = "lab_smoke.rs"]
mod lab_smoke;
#[path = "mesh_lab.rs"]
mod mesh_lab;
