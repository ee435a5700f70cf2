//! Configuration of a Basis node: the schema with its documented defaults, layered loading
//! (defaults, main file, `conf.d` drop-ins, environment, command-line overrides) and checks
//! whose errors point at the source, line and field at fault.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod env;
mod error;
mod load;
mod merge;
mod schema;
mod validate;

pub use env::{ENV_PREFIX, parse_override};
pub use error::{ConfigError, ErrorKind};
pub use load::{DEFAULT_MAIN, Loaded, Sources, check_file, load, parse_str};
pub use merge::Origin;
pub use schema::{
    ApiConfig, Config, ControlConfig, DEFAULTS_TOML, FederationConfig, FilesConfig, LogConfig,
    LogLevel, NodeConfig, RoomPolicyConfig, SECTIONS, Secret, StoreConfig, UpstreamConfig,
};
pub use validate::warnings;
