//! `basis config ...`: check, print defaults, show what is in effect.

use std::path::Path;

use anyhow::{Result, bail};
use basis_config::{ConfigError, DEFAULTS_TOML};
use serde_json::json;

use crate::cli::NodeArgs;
use crate::commands::print_json;
use crate::settings;

fn error_json(e: &ConfigError) -> serde_json::Value {
    json!({
        "ok": false,
        "error": {
            "kind": e.kind.as_str(),
            "source": e.source,
            "line": e.line,
            "column": e.column,
            "field": e.field,
            "reason": e.reason,
        }
    })
}

/// Checks one file over the defaults, or the whole layered configuration.
pub fn check(global: &NodeArgs, file: Option<&Path>, json: bool) -> Result<()> {
    let result = match file {
        Some(path) => basis_config::check_file(path).map(|c| (vec![path.to_path_buf()], c)),
        None => basis_config::load(&settings::sources(global)).map(|l| (l.files, l.config)),
    };
    match result {
        Ok((files, config)) => {
            for warning in basis_config::warnings(&config) {
                eprintln!("warning: {warning}");
            }
            if json {
                print_json(&json!({
                    "ok": true,
                    "files": files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>(),
                }));
            } else if files.is_empty() {
                println!("ok: no configuration files; built-in defaults apply");
            } else {
                for f in &files {
                    println!("ok: {}", f.display());
                }
            }
            Ok(())
        }
        Err(e) => {
            if json {
                print_json(&error_json(&e));
            }
            bail!(e)
        }
    }
}

/// Prints the documented defaults.
pub fn defaults() {
    print!("{DEFAULTS_TOML}");
}

/// Prints the configuration in effect, with the federation secret masked.
pub fn show(global: &NodeArgs, json: bool) -> Result<()> {
    let mut settings = settings::load(global)?;
    if settings.config.federation.secret.is_set() {
        settings.config.federation.secret.0 = "<hidden>".into();
    }
    if json {
        print_json(&json!({
            "config": serde_json::to_value(&settings.config)?,
            "files": settings.files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>(),
            "data_dir": settings.data_dir.display().to_string(),
            "control_socket": settings.socket.display().to_string(),
        }));
        return Ok(());
    }
    if settings.files.is_empty() {
        println!("# no configuration files; built-in defaults apply");
    }
    for f in &settings.files {
        println!("# read {}", f.display());
    }
    println!(
        "# data directory in effect: {}",
        settings.data_dir.display()
    );
    println!("# control socket in effect: {}", settings.socket.display());
    print!("{}", toml::to_string(&settings.config)?);
    Ok(())
}
