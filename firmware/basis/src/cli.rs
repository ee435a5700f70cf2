//! The command line: subcommands, flags and their help texts.

use std::path::PathBuf;

use basis_config::parse_override;
use clap::{Args, Parser, Subcommand};

/// Basis: secure group messaging for places without Internet.
///
/// One binary: `basis run` is the node daemon; `basis user`, `contacts`, `rooms`, `room`,
/// `send`, `history`, `tail` and `chat` are the end-to-end encrypted chat client (on any
/// computer that reaches a node); the rest are admin tools for the board. Configuration comes from built-in defaults, /etc/basis/basis.toml,
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
    /// Chat commands: the node to talk to, e.g. http://192.168.1.20:7480
    /// [default: the first node found on the LAN over mDNS].
    #[arg(long, global = true, value_name = "URL", env = "BASIS_NODE")]
    pub node: Option<String>,
    /// Chat commands: folder of your user key, contacts and room keys
    /// [default: ~/.config/basis/client].
    #[arg(long, global = true, value_name = "DIR", env = "BASIS_CLIENT_DIR")]
    pub profile: Option<PathBuf>,
    /// Chat commands: read the passphrase of your user key from the first line of FILE
    /// (else $BASIS_PASSPHRASE, else it is asked for).
    #[arg(
        long = "passphrase-file",
        global = true,
        value_name = "FILE",
        env = "BASIS_PASSPHRASE_FILE"
    )]
    pub passphrase_file: Option<PathBuf>,
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
    /// Show the running node: id, events held, store size, where it listens, and, with an
    /// upstream bridge, the WAN, each upstream link, and each bridged room's backlog and
    /// budget.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the running node's figures as Prometheus text: events, store, peers, and the
    /// upstream bridge (WAN state, links, backlog and budget per room). For node_exporter's
    /// textfile collector: `basis metrics > /var/lib/node_exporter/basis.prom`.
    Metrics,
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
    /// Measure this machine: durable ingest, backfill, reconciliation, latency across two
    /// nodes, memory and idle CPU, each beside its limit. Starts its own temporary nodes
    /// (nothing of a running node is touched). Quick by default (a couple of minutes).
    Bench {
        /// The full sizes (100k-event ingest and backfill, 1M-event sets): tens of minutes.
        #[arg(long)]
        full: bool,
        /// Also write the figures as JSON to FILE.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// Only these groups: ingest, recon, backfill, latency, resources (repeatable).
        #[arg(long, value_name = "GROUP")]
        only: Vec<String>,
    },
    /// Your user key: create, show (as text and QR code), export, import, display name.
    #[command(subcommand)]
    User(UserCommand),
    /// People you know, by nickname.
    #[command(subcommand)]
    Contacts(ContactsCommand),
    /// List your rooms: invited, joined and left.
    Rooms {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Create a room, invite people, join, leave, remove a member.
    #[command(subcommand)]
    Room(RoomCommand),
    /// Send a text message to a room (encrypted in encrypted rooms).
    Send {
        /// Room: its name, id or the first characters of the id.
        room: String,
        /// The text.
        text: String,
        /// Print the stored event as JSON.
        #[arg(long)]
        json: bool,
    },
    /// A direct message: the two-member room with WHO (made and WHO invited on first use).
    Dm {
        /// A contact's nickname or a user key.
        who: String,
        /// The text.
        text: String,
    },
    /// Replace the text of one of your messages.
    Edit {
        /// Room.
        room: String,
        /// The message: its id or first characters, as `basis history` shows.
        event: String,
        /// The new text.
        text: String,
    },
    /// Delete one of your messages.
    Delete {
        /// Room.
        room: String,
        /// The message.
        event: String,
    },
    /// React to a message, e.g. `basis react ops 1a2b3c4d 👍`.
    React {
        /// Room.
        room: String,
        /// The message.
        event: String,
        /// The reaction.
        key: String,
    },
    /// Mark a room read up to its newest message (others see a read receipt).
    Read {
        /// Room.
        room: String,
    },
    /// Show a room's messages, newest page first; `--before` pages back.
    History {
        /// Room.
        room: String,
        /// Show the messages older than this position (printed at the end of a page).
        #[arg(long, value_name = "POSITION")]
        before: Option<String>,
        /// Messages per page (room events such as joins between them are shown too).
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Follow a room live: the newest messages, then each new one as it arrives (Ctrl-C ends).
    Tail {
        /// Room.
        room: String,
        /// Print one JSON object per event.
        #[arg(long)]
        json: bool,
    },
    /// Interactive chat in the terminal: room list, live messages, edits and reactions.
    /// Type /help inside for the commands.
    Chat {
        /// Room to open first.
        room: Option<String>,
    },
}

/// `basis user ...`
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Make a new user key on this computer, encrypted with a passphrase (Argon2id and
    /// XChaCha20-Poly1305). The node never sees it.
    Create {
        /// Display name others see.
        #[arg(long)]
        name: Option<String>,
    },
    /// Show your user id and the text to share it; --qr prints a QR code as well.
    Show {
        /// Print a QR code of the shared key.
        #[arg(long)]
        qr: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write your encrypted user key (to FILE, or to standard output) to move it to
    /// another device; it stays encrypted with your passphrase.
    Export {
        /// Where to write it.
        file: Option<PathBuf>,
    },
    /// Bring in a user key exported elsewhere (asks for its passphrase to check it).
    Import {
        /// The exported key file.
        file: PathBuf,
    },
    /// Set the display name others see (published through the node).
    Name {
        /// The name.
        name: String,
    },
}

/// `basis contacts ...`
#[derive(Debug, Subcommand)]
pub enum ContactsCommand {
    /// List your contacts.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Add someone by the key they shared (`basis:user:...` or 64 hex characters).
    Add {
        /// Nickname.
        name: String,
        /// Their shared key.
        key: String,
    },
    /// Remove a contact.
    Remove {
        /// Nickname.
        name: String,
    },
    /// Give a contact another nickname.
    Rename {
        /// Current nickname.
        old: String,
        /// New nickname.
        new: String,
    },
}

/// `basis room ...`
#[derive(Debug, Subcommand)]
pub enum RoomCommand {
    /// Create a room (end-to-end encrypted unless --unencrypted). Its name is visible to
    /// nodes; messages are not.
    Create {
        /// Room name.
        name: String,
        /// Messages in plain text (nodes can read them).
        #[arg(long)]
        unencrypted: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Invite people: contacts' nicknames or user keys.
    Invite {
        /// Room.
        room: String,
        /// Who.
        #[arg(required = true)]
        users: Vec<String>,
    },
    /// Accept an invitation.
    Join {
        /// Room.
        room: String,
    },
    /// Leave a room (or decline an invitation).
    Leave {
        /// Room.
        room: String,
    },
    /// Remove a member (room creators only). They cannot read what is sent afterwards.
    Remove {
        /// Room.
        room: String,
        /// Who.
        user: String,
    },
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
    /// List every room the node holds (id, name, events, bytes, newest event), most recently
    /// active first: the room ids `[upstream.rooms.<room id>]` takes. Read-only; safe while
    /// the node runs.
    Rooms {
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
