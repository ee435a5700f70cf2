//! The command line: subcommands, flags and their help texts.

use std::path::PathBuf;

use basis_config::parse_override;
use clap::{Args, Parser, Subcommand};

/// Basis: secure group messaging for places without Internet.
///
/// One binary: `basis run` is the node daemon; `basis user`, `contacts`, `rooms`, `room`,
/// `send`, `dm`, `history`, `tail` and `chat` are the end-to-end encrypted chat client (on any
/// computer that reaches a node); the rest are admin tools for the board. The node's
/// configuration comes from built-in defaults, /etc/basis/basis.toml, /etc/basis/conf.d/*.toml,
/// BASIS_<SECTION>_<KEY> environment variables and the flags of each command, later ones
/// winning. `basis config defaults` prints every setting with its meaning; `basis <command>
/// --help` shows the flags that command takes.
#[derive(Debug, Parser)]
#[command(
    name = "basis",
    version,
    max_term_width = 100,
    propagate_version = true
)]
pub struct Cli {
    /// Flags given before the subcommand.
    #[command(flatten)]
    pub before: Before,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Where a node-admin command finds the node's configuration and data.
#[derive(Debug, Args, Clone, Default)]
pub struct NodeArgs {
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

/// `--node`, for chat commands that talk to a node.
#[derive(Debug, Args, Clone, Default)]
pub struct NodeUrlArg {
    /// The node to talk to: http://HOST:PORT, or HOST:PORT, e.g. 192.168.1.20:7480
    /// [default: the first node found on the LAN over mDNS].
    #[arg(long, global = true, value_name = "URL", env = "BASIS_NODE")]
    pub node: Option<String>,
}

/// `--profile`, for chat commands that use the files on this computer.
#[derive(Debug, Args, Clone, Default)]
pub struct ProfileArg {
    /// Folder of your user key, contacts and room keys [default: ~/.config/basis/client].
    #[arg(long, global = true, value_name = "DIR", env = "BASIS_CLIENT_DIR")]
    pub profile: Option<PathBuf>,
}

/// `--passphrase-file`, for chat commands that unlock the user key.
#[derive(Debug, Args, Clone, Default)]
pub struct PassphraseArg {
    /// Read the passphrase of your user key from the first line of FILE (else
    /// $BASIS_PASSPHRASE, else it is asked for).
    #[arg(
        long = "passphrase-file",
        global = true,
        value_name = "FILE",
        env = "BASIS_PASSPHRASE_FILE"
    )]
    pub passphrase_file: Option<PathBuf>,
}

/// The flags of a chat command that signs in to a node.
#[derive(Debug, Args, Clone, Default)]
pub struct ClientArgs {
    /// `--node`.
    #[command(flatten)]
    pub node: NodeUrlArg,
    /// `--profile`.
    #[command(flatten)]
    pub profile: ProfileArg,
    /// `--passphrase-file`.
    #[command(flatten)]
    pub passphrase: PassphraseArg,
}

/// Flags given before the subcommand (`basis --config FILE status`, `basis --node URL send`),
/// accepted as they always were. Hidden from `basis --help`: each command's help shows the
/// flags it takes. A flag the command does not take is refused (see [`Before::node_args`],
/// [`Before::client_args`]). No environment variables here: those belong to the command's
/// own flags, and a flag before the subcommand wins over them.
#[derive(Debug, Args, Clone, Default)]
pub struct Before {
    /// `--config`.
    #[arg(long = "config", short = 'c', id = "before_config", hide = true)]
    pub config: Option<PathBuf>,
    /// `--conf-d`.
    #[arg(long = "conf-d", id = "before_conf_d", hide = true)]
    pub conf_d: Option<PathBuf>,
    /// `--set`.
    #[arg(long = "set", id = "before_set", hide = true, value_parser = parse_set)]
    pub set: Vec<(String, String)>,
    /// `--data-dir`.
    #[arg(long = "data-dir", id = "before_data_dir", hide = true)]
    pub data_dir: Option<PathBuf>,
    /// `--node`.
    #[arg(long = "node", id = "before_node", hide = true)]
    pub node: Option<String>,
    /// `--profile`.
    #[arg(long = "profile", id = "before_profile", hide = true)]
    pub profile: Option<PathBuf>,
    /// `--passphrase-file`.
    #[arg(long = "passphrase-file", id = "before_passphrase_file", hide = true)]
    pub passphrase_file: Option<PathBuf>,
}

/// Which chat-client flags a command takes.
#[derive(Debug, Clone, Copy)]
pub struct Takes {
    /// `--node`.
    pub node: bool,
    /// `--profile`.
    pub profile: bool,
    /// `--passphrase-file`.
    pub passphrase: bool,
}

impl Takes {
    /// All three: a command that signs in to a node.
    pub const ALL: Takes = Takes {
        node: true,
        profile: true,
        passphrase: true,
    };
    /// None of them.
    pub const NONE: Takes = Takes {
        node: false,
        profile: false,
        passphrase: false,
    };
    /// Only `--profile`: a command that works on this computer's files alone.
    pub const PROFILE: Takes = Takes {
        node: false,
        profile: true,
        passphrase: false,
    };
}

/// A flag given before a subcommand that does not take it.
#[derive(Debug, thiserror::Error)]
#[error(
    "`basis {command}` does not take {flag} ({kind}); `basis {command} --help` lists its flags"
)]
pub struct NotTaken {
    /// The subcommand, e.g. `status` or `user show`.
    pub command: String,
    /// The flag, e.g. `--node`.
    pub flag: &'static str,
    /// What the flag is for.
    pub kind: &'static str,
}

impl Before {
    /// The node flags given before the subcommand, by name.
    fn node_flags(&self) -> [(&'static str, bool); 4] {
        [
            ("--config", self.config.is_some()),
            ("--conf-d", self.conf_d.is_some()),
            ("--set", !self.set.is_empty()),
            ("--data-dir", self.data_dir.is_some()),
        ]
    }

    /// The chat flags given before the subcommand, by name, with whether `takes` allows each.
    fn client_flags(&self, takes: Takes) -> [(&'static str, bool, bool); 3] {
        [
            ("--node", self.node.is_some(), takes.node),
            ("--profile", self.profile.is_some(), takes.profile),
            (
                "--passphrase-file",
                self.passphrase_file.is_some(),
                takes.passphrase,
            ),
        ]
    }

    fn refuse_node_flags(&self, command: &str) -> Result<(), NotTaken> {
        match self.node_flags().into_iter().find(|(_, given)| *given) {
            Some((flag, _)) => Err(NotTaken {
                command: command.to_string(),
                flag,
                kind: "a node-admin flag",
            }),
            None => Ok(()),
        }
    }

    fn refuse_client_flags(&self, takes: Takes, command: &str) -> Result<(), NotTaken> {
        match self
            .client_flags(takes)
            .into_iter()
            .find(|(_, given, taken)| *given && !*taken)
        {
            Some((flag, _, _)) => Err(NotTaken {
                command: command.to_string(),
                flag,
                kind: "a chat-client flag",
            }),
            None => Ok(()),
        }
    }

    /// The node flags of `command` (a node-admin command), with those given before it: a flag
    /// given before wins over the environment; `--set` flags add up, those given before first.
    pub fn node_args(self, after: NodeArgs, command: &str) -> Result<NodeArgs, NotTaken> {
        self.refuse_client_flags(Takes::NONE, command)?;
        let mut set = self.set;
        set.extend(after.set);
        Ok(NodeArgs {
            config: self.config.or(after.config),
            conf_d: self.conf_d.or(after.conf_d),
            set,
            data_dir: self.data_dir.or(after.data_dir),
        })
    }

    /// The chat flags of `command`, which takes those in `takes`, with those given before it
    /// (which win over the environment).
    pub fn client_args(
        self,
        after: ClientArgs,
        takes: Takes,
        command: &str,
    ) -> Result<ClientArgs, NotTaken> {
        self.refuse_node_flags(command)?;
        self.refuse_client_flags(takes, command)?;
        Ok(ClientArgs {
            node: NodeUrlArg {
                node: self.node.or(after.node.node),
            },
            profile: ProfileArg {
                profile: self.profile.or(after.profile.profile),
            },
            passphrase: PassphraseArg {
                passphrase_file: self.passphrase_file.or(after.passphrase.passphrase_file),
            },
        })
    }

    /// Checks that nothing was given before `command`, which takes none of these flags.
    pub fn nothing(self, command: &str) -> Result<(), NotTaken> {
        self.refuse_node_flags(command)?;
        self.refuse_client_flags(Takes::NONE, command)
    }
}

/// A message's text: anything but empty or blanks only, which would show as an empty bubble.
fn message_text(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        return Err("the message is empty: there is nothing to send".into());
    }
    Ok(text.to_string())
}

fn parse_set(arg: &str) -> Result<(String, String), String> {
    parse_override(arg).map_err(|e| e.to_string())
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the node daemon (in the foreground; SIGTERM or Ctrl-C stops it cleanly).
    Run {
        /// Where the node's configuration and data are.
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Import a first-boot configuration from the SD card's boot partition
    /// (/boot/firmware/basis.toml, or $BASIS_FIRST_BOOT_FILE) into conf.d as
    /// 00-first-boot.toml, remove it from the card, and exit. `basis run` does the same at
    /// start; the systemd unit runs this step as root first. A file with an error is left in
    /// place and the command fails naming the file, line and field.
    Provision {
        /// Where the node's configuration and data are.
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Print this node's id (its public key), making the node key if there is none yet.
    Id {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Where the node's configuration and data are.
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Show the running node: id, events held, store size, where it listens, and, with an
    /// upstream bridge, the WAN, each upstream link, and each bridged room's backlog and
    /// budget.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Where the node's configuration and data are.
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Print the running node's figures as Prometheus text: events, store, peers, and the
    /// upstream bridge (WAN state, links, backlog and budget per room). For node_exporter's
    /// textfile collector: `basis metrics > /var/lib/node_exporter/basis.prom`.
    Metrics {
        /// Where the node's configuration and data are.
        #[command(flatten)]
        node: NodeArgs,
    },
    /// List the other nodes this node knows: how each was found, link state, round-trip
    /// time, last reconciliation, events sent and received, reputation score.
    Peers {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Where the node's configuration and data are.
        #[command(flatten)]
        node: NodeArgs,
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
    /// nodes, a file crossing between two nodes (64 MiB; 1 GiB with --full), a full mesh of
    /// 8 nodes (16 with --full), memory and idle CPU, each beside its limit. Starts its own temporary nodes
    /// (nothing of a running node is touched). Quick by default (a couple of minutes).
    Bench {
        /// The full sizes (100k-event ingest and backfill, 1M-event sets, a 1 GiB file): tens of
        /// minutes.
        #[arg(long)]
        full: bool,
        /// Also write the figures as JSON to FILE.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// Only these groups: ingest, recon, backfill, latency, files, mesh, resources
        /// (repeatable).
        #[arg(long, value_name = "GROUP")]
        only: Vec<String>,
    },
    /// Your user key: create, show (as text and QR code), export, import, display name.
    #[command(subcommand)]
    User(UserCommand),
    /// People you know, by nickname; `basis contacts` alone lists them.
    Contacts {
        /// What to do [default: list].
        #[command(subcommand)]
        command: Option<ContactsCommand>,
        /// Where your contacts are kept.
        #[command(flatten)]
        profile: ProfileArg,
    },
    /// List your rooms: invited, joined and left.
    Rooms {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Which node, user key and passphrase.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Create a room, invite people, join, leave, remove a member.
    Room {
        /// What to do.
        #[command(subcommand)]
        command: RoomCommand,
        /// Which node, user key and passphrase.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Send a text message or a file to a room (encrypted in encrypted rooms).
    ///
    /// With --file, the file is sealed on this computer with a fresh key and uploaded in
    /// encrypted chunks; the node and the other nodes only ever hold ciphertext, and the key
    /// travels inside the room's encryption. Files larger than the node takes
    /// (files.max_file_mib, 100 MiB by default) are refused before a byte is sent. An upload
    /// that breaks off resumes: run the same command again and only the missing chunks go.
    #[command(verbatim_doc_comment)]
    Send {
        /// Room: its name, id or the first characters of the id.
        room: String,
        /// The text (not with --file).
        #[arg(required_unless_present = "file", conflicts_with = "file", value_parser = message_text)]
        text: Option<String>,
        /// Send this file instead of a text.
        #[arg(long, value_name = "PATH")]
        file: Option<std::path::PathBuf>,
        /// Print the stored event as JSON.
        #[arg(long)]
        json: bool,
        /// Which node, user key and passphrase.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// A direct message: the two-member room with WHO (made and WHO invited on first use).
    Dm {
        /// A contact's nickname or a user key.
        who: String,
        /// The text.
        #[arg(value_parser = message_text)]
        text: String,
        /// Which node, user key and passphrase.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Replace the text of one of your messages.
    Edit {
        /// Room.
        room: String,
        /// The message: its id or first characters, as `basis history` shows.
        event: String,
        /// The new text.
        #[arg(value_parser = message_text)]
        text: String,
        /// Which node, user key and passphrase.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Delete one of your messages.
    Delete {
        /// Room.
        room: String,
        /// The message.
        event: String,
        /// Which node, user key and passphrase.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// React to a message, e.g. `basis react ops 1a2b3c4d 👍`.
    React {
        /// Room.
        room: String,
        /// The message.
        event: String,
        /// The reaction.
        key: String,
        /// Which node, user key and passphrase.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Mark a room read up to its newest message (others see a read receipt).
    Read {
        /// Room.
        room: String,
        /// Which node, user key and passphrase.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Save a file someone shared in a room, decrypted, into a folder.
    ///
    /// Waits while the node fetches the file from other nodes (with a progress bar on a
    /// terminal), downloads its encrypted chunks and opens them here. The file is saved under
    /// a safe form of the sender's name (never a path: no folders, no control characters);
    /// an existing file is never replaced: an identical one is kept, a different one gets
    /// `name (1).ext`.
    #[command(verbatim_doc_comment)]
    Download {
        /// Room.
        room: String,
        /// The file message: its id or first characters, as `basis history` shows.
        event: String,
        /// The folder to save into, made if it does not exist (default: the current folder).
        #[arg(long, value_name = "DIR")]
        to: Option<std::path::PathBuf>,
        /// Which node, user key and passphrase.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show a room's messages, newest page first; `--before` pages back. A file's line says
    /// its name, size and whether it is here on the node, being fetched, or not yet here.
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
        /// Which node, user key and passphrase.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Follow a room live: the newest messages, then each new one as it arrives (Ctrl-C ends).
    Tail {
        /// Room.
        room: String,
        /// Print one JSON object per event.
        #[arg(long)]
        json: bool,
        /// Which node, user key and passphrase.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Interactive chat in the terminal: room list, live messages, edits and reactions.
    /// Type /help inside for the commands.
    Chat {
        /// Room to open first.
        room: Option<String>,
        /// Which node, user key and passphrase.
        #[command(flatten)]
        client: ClientArgs,
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
        /// Which node, user key and passphrase.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show your user id and the text to share it; --qr prints a QR code as well.
    Show {
        /// Print a QR code of the shared key.
        #[arg(long)]
        qr: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Where your user key is.
        #[command(flatten)]
        profile: ProfileArg,
    },
    /// Write your encrypted user key (to FILE, or to standard output) to move it to
    /// another device; it stays encrypted with your passphrase.
    Export {
        /// Where to write it.
        file: Option<PathBuf>,
        /// Where your user key is.
        #[command(flatten)]
        profile: ProfileArg,
    },
    /// Bring in a user key exported elsewhere (asks for its passphrase to check it).
    Import {
        /// The exported key file.
        file: PathBuf,
        /// Where your user key is.
        #[command(flatten)]
        profile: ProfileArg,
        /// The passphrase that opens it.
        #[command(flatten)]
        passphrase: PassphraseArg,
    },
    /// Set the display name others see (published through the node).
    Name {
        /// The name.
        name: String,
        /// Which node, user key and passphrase.
        #[command(flatten)]
        client: ClientArgs,
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
        /// Where the node's configuration and data are.
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Print the built-in defaults: every setting, documented.
    Defaults,
    /// Print the configuration in effect, after all layers, and the files it came from.
    Show {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Where the node's configuration and data are.
        #[command(flatten)]
        node: NodeArgs,
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
        /// Where the node's configuration and data are.
        #[command(flatten)]
        node: NodeArgs,
    },
    /// List every room the node holds (id, name, events, bytes, newest event), most recently
    /// active first: the room ids `[upstream.rooms.<room id>]` takes. Read-only; safe while
    /// the node runs.
    Rooms {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Where the node's configuration and data are.
        #[command(flatten)]
        node: NodeArgs,
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
    /// Where the node's configuration and data are.
    #[command(flatten)]
    pub node: NodeArgs,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("basis").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    #[test]
    fn flags_go_before_or_after_the_subcommand() {
        let after = parse(&["status", "--config", "/a.toml", "--set", "store.readers=2"]);
        let before = parse(&["--config", "/a.toml", "--set", "store.readers=2", "status"]);
        for cli in [after, before] {
            let Command::Status { node, .. } = cli.command else {
                panic!("not status");
            };
            let node = cli.before.node_args(node, "status").unwrap();
            assert_eq!(node.config, Some(PathBuf::from("/a.toml")));
            assert_eq!(node.set, [("store.readers".into(), "2".into())]);
        }
        // Flags of a group reach its subcommands, on either side of them.
        for args in [
            &["room", "--node", "http://n:1", "join", "ops"][..],
            &["room", "join", "ops", "--node", "http://n:1"],
        ] {
            let Command::Room { client, .. } = parse(args).command else {
                panic!("not room");
            };
            assert_eq!(client.node.node.as_deref(), Some("http://n:1"), "{args:?}");
        }
    }

    #[test]
    fn a_flag_before_a_command_that_does_not_take_it_is_refused() {
        let cli = parse(&["--node", "http://n:1", "status"]);
        let Command::Status { node, .. } = cli.command else {
            panic!("not status");
        };
        let err = cli.before.node_args(node, "status").unwrap_err();
        assert_eq!(err.flag, "--node");
        let cli = parse(&["--data-dir", "/d", "send", "ops", "hi"]);
        let Command::Send { client, .. } = cli.command else {
            panic!("not send");
        };
        let err = cli
            .before
            .client_args(client, Takes::ALL, "send")
            .unwrap_err();
        assert_eq!(err.flag, "--data-dir");
        assert!(
            err.to_string()
                .contains("`basis send` does not take --data-dir")
        );
        // And a flag after it is not in its help at all: clap refuses it.
        assert!(Cli::try_parse_from(["basis", "status", "--node", "x"]).is_err());
        assert!(Cli::try_parse_from(["basis", "send", "r", "t", "--data-dir", "x"]).is_err());
    }
}
