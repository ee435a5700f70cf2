//! `basis store check`: is the database sound?

use anyhow::{Result, bail};
use serde_json::json;

use crate::commands::print_json;
use crate::settings::Settings;

/// Runs the integrity check; fails (exit 1) when problems are found.
pub fn check(settings: &Settings, json: bool) -> Result<()> {
    let db = settings.db_file();
    let report = basis_store::check(&db)?;
    let ok = report.problems.is_empty();
    if json {
        print_json(&json!({
            "ok": ok,
            "problems": report.problems,
            "events": report.events,
            "rooms": report.rooms,
            "schema_version": report.schema_version,
            "database": db.display().to_string(),
        }));
    } else if ok {
        println!(
            "ok: {} events in {} room{} ({})",
            report.events,
            report.rooms,
            if report.rooms == 1 { "" } else { "s" },
            db.display()
        );
    } else {
        for problem in &report.problems {
            println!("problem: {problem}");
        }
    }
    if !ok {
        bail!(
            "{} has {} integrity problems; stop the node and restore the file from a backup",
            db.display(),
            report.problems.len()
        );
    }
    Ok(())
}
