//! `basis`: the node daemon (`basis run`) and its admin tools.

mod api;
mod bench;
mod cli;
mod client;
mod commands;
mod control;
mod daemon;
mod datadir;
mod federation;
mod identity;
mod logging;
mod node;
mod notify;
mod provision;
mod settings;

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;

use crate::cli::{Cli, Command, ConfigCommand, DevCommand, StoreCommand};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli) {
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

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("basis")
        .build()?)
}

/// Runs a chat-client command; `None` when the command is not one.
fn client_command(global: &cli::Global, command: Command) -> Result<Option<Result<()>>, Command> {
    use crate::client::profile::PassphraseSource;
    use crate::client::session::ClientOptions;
    let opts = ClientOptions {
        node: global.node.clone(),
        profile: global.profile.clone(),
        passphrase: PassphraseSource {
            file: global.passphrase_file.clone(),
        },
    };
    let rt = match &command {
        Command::User(_)
        | Command::Rooms { .. }
        | Command::Room(_)
        | Command::Send { .. }
        | Command::Dm { .. }
        | Command::Edit { .. }
        | Command::Delete { .. }
        | Command::React { .. }
        | Command::Read { .. }
        | Command::History { .. }
        | Command::Tail { .. }
        | Command::Chat { .. } => match runtime() {
            Ok(rt) => rt,
            Err(e) => return Ok(Some(Err(e))),
        },
        Command::Contacts(_) => {
            return Ok(Some(commands::user::contacts(
                &opts,
                match command {
                    Command::Contacts(c) => c,
                    _ => return Ok(None),
                },
            )));
        }
        _ => return Err(command),
    };
    use commands::{live, messages, rooms, user};
    let result = rt.block_on(async {
        match command {
            Command::User(c) => user::user(&opts, c).await,
            Command::Rooms { json } => rooms::list(&opts, json).await,
            Command::Room(c) => rooms::room(&opts, c).await,
            Command::Send { room, text, json } => messages::send(&opts, &room, text, json).await,
            Command::Dm { who, text } => messages::dm(&opts, &who, text).await,
            Command::Edit { room, event, text } => {
                messages::change(&opts, &room, &event, messages::Act::Edit(text)).await
            }
            Command::Delete { room, event } => {
                messages::change(&opts, &room, &event, messages::Act::Delete).await
            }
            Command::React { room, event, key } => {
                messages::change(&opts, &room, &event, messages::Act::React(key)).await
            }
            Command::Read { room } => messages::read(&opts, &room).await,
            Command::History {
                room,
                before,
                limit,
                json,
            } => messages::history(&opts, &room, before.as_deref(), limit, json).await,
            Command::Tail { room, json } => live::tail(&opts, &room, json).await,
            Command::Chat { room } => live::chat(&opts, room.as_deref()).await,
            _ => Ok(()),
        }
    });
    Ok(Some(result))
}

fn dispatch(cli: Cli) -> Result<()> {
    let global = cli.global;
    if let Command::Bench { full, json, only } = cli.command {
        logging::init(basis_config::LogLevel::Warn);
        return runtime()?.block_on(bench::run(bench::BenchOptions { full, json, only }));
    }
    // The chat client needs no node configuration (it may run on a laptop).
    let command = match client_command(&global, cli.command) {
        Ok(Some(result)) => {
            return result;
        }
        Ok(None) => return Ok(()),
        Err(command) => command,
    };
    let cli = Cli {
        global: global.clone(),
        command,
    };
    // Commands that must work even when the configuration is broken come first.
    match &cli.command {
        Command::Config(ConfigCommand::Check { file, json }) => {
            return commands::config::check(&global, file.as_deref(), *json);
        }
        Command::Config(ConfigCommand::Defaults) => {
            commands::config::defaults();
            return Ok(());
        }
        Command::Config(ConfigCommand::Show { json }) => {
            return commands::config::show(&global, *json);
        }
        Command::Provision => return provision::first_boot(&global),
        // A file a team put on the boot partition joins the configuration before it loads.
        Command::Run => provision::first_boot(&global)?,
        _ => {}
    }
    let settings = settings::load(&global)?;
    match cli.command {
        Command::Run => {
            logging::init(settings.config.log.level);
            runtime()?.block_on(daemon::run(settings))
        }
        command => {
            logging::init(basis_config::LogLevel::Warn.min(settings.config.log.level));
            match command {
                Command::Id { json } => commands::id::run(&settings, json),
                Command::Status { json } => {
                    runtime()?.block_on(commands::status::run(&settings, json))
                }
                Command::Metrics => runtime()?.block_on(commands::metrics::run(&settings)),
                Command::Peers { json } => {
                    runtime()?.block_on(commands::peers::run(&settings, json))
                }
                Command::Store(StoreCommand::Check { json }) => {
                    commands::store::check(&settings, json)
                }
                Command::Store(StoreCommand::Rooms { json }) => {
                    commands::store::rooms(&settings, json)
                }
                Command::Dev(DevCommand::Append(args)) => {
                    runtime()?.block_on(commands::dev::append(&settings, args))
                }
                _ => Ok(()),
            }
        }
    }
}
