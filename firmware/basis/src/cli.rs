//! The command line: subcommands, flags and their help texts.

use std::path::PathBuf;

use basis_config::parse_override;
use clap::{Args, Parser, Subcommand};

/// Basis: secure group messaging for places without Internet.
///
/// One binary: `basis run` is the node daemon; the other subcommands are admin tools and, in
/// time, the client. Configuration comes from built-in defaults, /etc/basis/basis.toml,
/// /etc/basis/conf.d/*.toml, BASIS_<SECTION>_<KEY> environment variables and the flags below,
/// later ones winning. `basis config defaults` prints every setting with its meaning.
#[derive(Debug, Parser)]
#[command(
    name = "basis",
    version,
    max_term_width = 100,
    propagate_version = true
)]
pub struct Cli {
    /// Where to find the configuration.
    #[command(flatten)]
    pub global: Global,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every subcommand accepts.
#[derive(Debug, Args, Clone)]
pub struct Global {
    /// Main configuration file [default: /etc/basis/basis.toml; missing is fine then].
    #[arg(
        long,
        short = 'c',
        global = true,
        value_name = "FILE",
        env = "BASIS_CONFIG"
    )]
    pub config: Option<PathBuf>,
    /// Folder of drop-in *.toml files read after the main file [default: conf.d beside it].
    #[arg(long = "conf-d", global = true, value_name = "DIR")]
    pub conf_d: Option<PathBuf>,
    /// Set one setting, e.g. --set store.quota_mib=512 (repeatable; wins over files and
    /// environment).
    #[arg(long = "set", global = true, value_name = "KEY=VALUE", value_parser = parse_set)]
    pub set: Vec<(String, String)>,
    /// Data directory of the node (key, database, control socket); same as
    /// --set node.data_dir=DIR.
    #[arg(long = "data-dir", global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

fn parse_set(arg: &str) -> Result<(String, String), String> {
    parse_override(arg).map_err(|e| e.to_string())
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the node daemon (in the foreground; SIGTERM or Ctrl-C stops it cleanly).
    Run,
    /// Import a first-boot configuration from the SD card's boot partition
    /// (/boot/firmware/basis.toml, or $BASIS_FIRST_BOOT_FILE) into conf.d as
    /// 00-first-boot.toml, remove it from the card, and exit. `basis run` does the same at
    /// start; the systemd unit runs this step as root first. A file with an error is left in
    /// place and the command fails naming the file, line and field.
    Provision,
    /// Print this node's id (its public key), making the node key if there is none yet.
    Id {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show the running node: id, events held, store size, where it listens.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the other nodes this node knows: how each was found, link state, round-trip
    /// time, last reconciliation, events sent and received, reputation score.
    Peers {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check, show or explain the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Inspect the event database.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Developer tools: put signed test events into a running node.
    #[command(subcommand)]
    Dev(DevCommand),
}

/// `basis config ...`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check the configuration: FILE alone over the defaults, or the whole layered
    /// configuration when no FILE is given. Points at the bad field and says why.
    Check {
        /// The file to check.
        file: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the built-in defaults: every setting, documented.
    Defaults,
    /// Print the configuration in effect, after all layers, and the files it came from.
    Show {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `basis store ...`
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Check the database for damage (SQLite integrity check) and count what it holds.
    /// Read-only; safe while the node runs.
    Check {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `basis dev ...`
#[derive(Debug, Subcommand)]
pub enum DevCommand {
    /// Sign text messages with a user key and store them through the running node's
    /// validate-and-store path. Prints each event once the node has made it durable.
    Append(AppendArgs),
}

/// Arguments of `basis dev append`.
#[derive(Debug, Args)]
pub struct AppendArgs {
    /// Room to append to; without it a new room is created first.
    #[arg(long, value_name = "ROOM_ID")]
    pub room: Option<basis_core::RoomId>,
    /// Text of the message (numbered " #N" when --count is more than 1).
    #[arg(long, default_value = "hello")]
    pub text: String,
    /// How many messages.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub count: u64,
    /// Connections sending at once.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub parallel: u16,
    /// User key to sign with (PKCS#8 PEM ed25519); default: a throw-away key.
    #[arg(long, value_name = "FILE")]
    pub user_key: Option<PathBuf>,
    /// Print one JSON object per stored event.
    #[arg(long)]
    pub json: bool,
}
