//! `basis store check`: is the database sound? `basis store rooms`: which rooms it holds.

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

/// Lists the rooms the database holds, most recently active first.
pub fn rooms(settings: &Settings, json: bool) -> Result<()> {
    let rooms = basis_store::list_rooms(&settings.db_file())?;
    let newest = |r: &basis_store::RoomListing| {
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(r.newest.millis());
        humantime::format_rfc3339_seconds(at).to_string()
    };
    if json {
        let list: Vec<serde_json::Value> = rooms
            .iter()
            .map(|r| {
                json!({
                    "room": r.room.to_string(),
                    "name": r.name,
                    "events": r.events,
                    "bytes": r.bytes,
                    "newest": newest(r),
                    "newest_ms": r.newest.millis(),
                })
            })
            .collect();
        print_json(&json!({ "rooms": list }));
        return Ok(());
    }
    if rooms.is_empty() {
        println!("no rooms");
    }
    for r in &rooms {
        let name = if r.name.is_empty() { "-" } else { &r.name };
        println!(
            "{}  {name}  {} events  {}  newest {}",
            r.room,
            r.events,
            crate::commands::status::human_bytes(r.bytes),
            newest(r)
        );
    }
    Ok(())
}
