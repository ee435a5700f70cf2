//! The subcommands other than `run`.

pub mod config;
pub mod dev;
pub mod files;
pub mod id;
pub mod live;
pub mod messages;
pub mod metrics;
pub mod peers;
pub mod rooms;
pub mod status;
pub mod store;
pub mod user;

/// Prints a value as one line of JSON on stdout.
pub fn print_json(value: &serde_json::Value) {
    println!("{value}");
}
