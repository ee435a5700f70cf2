//! `basis`: the node daemon (`basis run`) and its admin tools.

mod cli;
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

fn dispatch(cli: Cli) -> Result<()> {
    let global = cli.global;
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
                Command::Peers { json } => {
                    runtime()?.block_on(commands::peers::run(&settings, json))
                }
                Command::Store(StoreCommand::Check { json }) => {
                    commands::store::check(&settings, json)
                }
                Command::Dev(DevCommand::Append(args)) => {
                    runtime()?.block_on(commands::dev::append(&settings, args))
                }
                Command::Run | Command::Provision | Command::Config(_) => Ok(()),
            }
        }
    }
}
