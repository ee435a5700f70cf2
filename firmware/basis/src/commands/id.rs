//! `basis id`: the node's identity.

use anyhow::Result;
use serde_json::json;

use crate::commands::print_json;
use crate::settings::Settings;
use crate::{datadir, identity};

/// Prints the node id, making the key first if there is none.
pub fn run(settings: &Settings, json: bool) -> Result<()> {
    datadir::prepare(&settings.data_dir)?;
    let key = identity::load_or_create(&settings.key_file())?;
    let id = key.id();
    if json {
        print_json(&json!({
            "node_id": id.to_string(),
            "short": id.short(),
            "key_file": settings.key_file().display().to_string(),
        }));
    } else {
        println!("{id}");
    }
    Ok(())
}
