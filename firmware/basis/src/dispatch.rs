//! The `basis` command line: each subcommand to the code that runs it, in one exhaustive
//! match, with the runtime and logging each kind of command needs.

use std::process::ExitCode;

use anyhow::Result;
use clap::{CommandFactory, FromArgMatches};

use crate::cli::{
    Before, Cli, ClientArgs, Command, ConfigCommand, DevCommand, NodeArgs, NotTaken, StoreCommand,
    Takes, UserCommand,
};
use crate::client::profile::PassphraseSource;
use crate::client::session::ClientOptions;
use crate::settings::Settings;
use crate::{bench, cli, commands, daemon, logging, provision, settings};

/// Runs the `basis` command line: parses the arguments, runs the subcommand, prints an error
/// in the user's words and returns the exit code.
pub fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if !matches!(cli.command, Command::Run { .. } | Command::Bench { .. }) {
        stop_quietly_on_a_closed_pipe();
    }
    let mut path = Vec::new();
    let mut leaf = &matches;
    while let Some((name, sub)) = leaf.subcommand() {
        path.push(name);
        leaf = sub;
    }
    let result = dispatch(cli, &path.join(" ")).unwrap_or_else(|not_taken| {
        Cli::command()
            .error(clap::error::ErrorKind::UnknownArgument, not_taken)
            .exit()
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Under systemd stderr may not be read: put a failed start in the journal too.
            if systemd_journal_logger::connected_to_journal() {
                log::error!("{e:#}");
            }
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A command whose output goes into a pipe that closes early (`basis history ops --json |
/// head`) stops quietly, as Unix tools do, instead of failing on its next line. Rust ignores
/// SIGPIPE by default so that a write to a closed pipe is an error; the daemon and the
/// benchmark (which write to sockets whose peers may go) keep that.
fn stop_quietly_on_a_closed_pipe() {
    // SAFETY: setting a signal's disposition to its default has no memory-safety
    // preconditions; no handler of ours is replaced.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("basis")
        .build()?)
}

/// The chat client's options from its flags.
fn client_options(args: ClientArgs) -> ClientOptions {
    ClientOptions {
        node: args.node.node,
        profile: args.profile.profile,
        passphrase: PassphraseSource {
            file: args.passphrase.passphrase_file,
        },
    }
}

/// Runs a node-admin command that works with the running node (or its data directory),
/// logging at warnings (or what the configuration asks, if less).
fn admin(node: &NodeArgs, run: impl FnOnce(&Settings) -> Result<()>) -> Result<()> {
    let settings = settings::load_for_running(node)?;
    logging::init(basis_config::LogLevel::Warn.min(settings.config.log.level));
    run(&settings)
}

/// Runs a chat command on a runtime. The chat client needs no node configuration (it may run
/// on a laptop).
fn chat<F: std::future::Future<Output = Result<()>>>(
    args: ClientArgs,
    run: impl FnOnce(ClientOptions) -> F,
) -> Result<()> {
    runtime()?.block_on(run(client_options(args)))
}

/// Runs the command; `Err` when a flag given before the subcommand is not one it takes.
fn dispatch(cli: Cli, path: &str) -> Result<Result<()>, NotTaken> {
    use commands::{files, live, messages, rooms, user};
    let Cli { before, command } = cli;
    let node = |before: Before, after: NodeArgs| before.node_args(after, path);
    let client = |before: Before, after: ClientArgs| before.client_args(after, Takes::ALL, path);
    Ok(match command {
        Command::Run { node: after } => {
            let node = node(before, after)?;
            run(&node)
        }
        // Commands that must work even when the configuration is broken load none.
        Command::Provision { node: after } => provision::first_boot(&node(before, after)?),
        Command::Config(ConfigCommand::Check {
            file,
            json,
            node: after,
        }) => commands::config::check(&node(before, after)?, file.as_deref(), json),
        Command::Config(ConfigCommand::Defaults) => {
            // It reads no configuration, but like the other admin commands it lets node flags
            // stand before it (scripts put `--config FILE` first for every admin command).
            node(before, NodeArgs::default())?;
            commands::config::defaults();
            Ok(())
        }
        Command::Config(ConfigCommand::Show { json, node: after }) => {
            commands::config::show(&node(before, after)?, json)
        }
        Command::Id { json, node: after } => {
            admin(&node(before, after)?, |s| commands::id::run(s, json))
        }
        Command::Status { json, node: after } => admin(&node(before, after)?, |s| {
            runtime()?.block_on(commands::status::run(s, json))
        }),
        Command::Metrics { node: after } => admin(&node(before, after)?, |s| {
            runtime()?.block_on(commands::metrics::run(s))
        }),
        Command::Peers { json, node: after } => admin(&node(before, after)?, |s| {
            runtime()?.block_on(commands::peers::run(s, json))
        }),
        Command::Store(StoreCommand::Check { json, node: after }) => {
            admin(&node(before, after)?, |s| commands::store::check(s, json))
        }
        Command::Store(StoreCommand::Rooms { json, node: after }) => {
            admin(&node(before, after)?, |s| commands::store::rooms(s, json))
        }
        Command::Dev(DevCommand::Append(mut args)) => {
            let node = node(before, std::mem::take(&mut args.node))?;
            admin(&node, |s| {
                runtime()?.block_on(commands::dev::append(s, args))
            })
        }
        Command::Bench { full, json, only } => {
            before.nothing(path)?;
            logging::init(basis_config::LogLevel::Warn);
            runtime()
                .and_then(|rt| rt.block_on(bench::run(bench::BenchOptions { full, json, only })))
        }
        Command::User(command) => {
            let (after, takes) = match &command {
                UserCommand::Create { client, .. } | UserCommand::Name { client, .. } => {
                    (client.clone(), Takes::ALL)
                }
                UserCommand::Show { profile, .. } | UserCommand::Export { profile, .. } => (
                    ClientArgs {
                        profile: profile.clone(),
                        ..ClientArgs::default()
                    },
                    Takes::PROFILE,
                ),
                UserCommand::Import {
                    profile,
                    passphrase,
                    ..
                } => (
                    ClientArgs {
                        profile: profile.clone(),
                        passphrase: passphrase.clone(),
                        ..ClientArgs::default()
                    },
                    Takes {
                        passphrase: true,
                        ..Takes::PROFILE
                    },
                ),
            };
            let args = before.client_args(after, takes, path)?;
            chat(args, |opts| async move { user::user(&opts, command).await })
        }
        Command::Contacts { command, profile } => {
            let after = ClientArgs {
                profile,
                ..ClientArgs::default()
            };
            let args = before.client_args(after, Takes::PROFILE, path)?;
            let command = command.unwrap_or(cli::ContactsCommand::List { json: false });
            user::contacts(&client_options(args), command)
        }
        Command::Rooms {
            json,
            client: after,
        } => chat(client(before, after)?, |opts| async move {
            rooms::list(&opts, json).await
        }),
        Command::Room {
            command,
            client: after,
        } => chat(client(before, after)?, |opts| async move {
            rooms::room(&opts, command).await
        }),
        Command::Send {
            room,
            text,
            file,
            json,
            client: after,
        } => chat(client(before, after)?, |opts| async move {
            match (file, text) {
                (Some(path), _) => files::send_file(&opts, &room, &path, json).await,
                (None, Some(text)) => messages::send(&opts, &room, text, json).await,
                (None, None) => anyhow::bail!("give a text or --file PATH"),
            }
        }),
        Command::Download {
            room,
            event,
            to,
            client: after,
        } => chat(client(before, after)?, |opts| async move {
            files::download(&opts, &room, &event, to.as_deref()).await
        }),
        Command::Dm {
            who,
            text,
            client: after,
        } => chat(client(before, after)?, |opts| async move {
            messages::dm(&opts, &who, text).await
        }),
        Command::Edit {
            room,
            event,
            text,
            client: after,
        } => chat(client(before, after)?, |opts| async move {
            messages::change(&opts, &room, &event, messages::Act::Edit(text)).await
        }),
        Command::Delete {
            room,
            event,
            client: after,
        } => chat(client(before, after)?, |opts| async move {
            messages::change(&opts, &room, &event, messages::Act::Delete).await
        }),
        Command::React {
            room,
            event,
            key,
            client: after,
        } => chat(client(before, after)?, |opts| async move {
            messages::change(&opts, &room, &event, messages::Act::React(key)).await
        }),
        Command::Read {
            room,
            client: after,
        } => chat(client(before, after)?, |opts| async move {
            messages::read(&opts, &room).await
        }),
        Command::History {
            room,
            before: cursor,
            limit,
            json,
            client: after,
        } => chat(client(before, after)?, |opts| async move {
            messages::history(&opts, &room, cursor.as_deref(), limit, json).await
        }),
        Command::Tail {
            room,
            json,
            client: after,
        } => chat(client(before, after)?, |opts| async move {
            live::tail(&opts, &room, json).await
        }),
        Command::Chat {
            room,
            client: after,
        } => chat(client(before, after)?, |opts| async move {
            live::chat(&opts, room.as_deref()).await
        }),
    })
}

/// `basis run`: a file a team put on the boot partition joins the configuration before it
/// loads; then the daemon runs.
fn run(node: &NodeArgs) -> Result<()> {
    provision::first_boot(node)?;
    let settings = settings::load(node)?;
    logging::init(settings.config.log.level);
    runtime()?.block_on(daemon::run(settings))
}
