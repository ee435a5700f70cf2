//! The subcommands other than `run`.

pub mod config;
pub mod dev;
pub mod id;
pub mod peers;
pub mod status;
pub mod store;

/// Prints a value as one line of JSON on stdout.
pub fn print_json(value: &serde_json::Value) {
    println!("{value}");
}
