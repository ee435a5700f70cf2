//! Expiry: per-room retention by age, then the global byte quota, oldest events first.
//!
//! A room's retention comes from its latest settings event that sets `retention_secs`
//! (latest by timestamp, then id: a deterministic function of the room's events); rooms
//! without one use the node's default.
//!
//! An event expires by age only when two clocks agree that it is old: its author's timestamp
//! is older than the limit by the node's hybrid clock, and it arrived here longer ago than
//! the limit by the node's own wall clock. Boards without a real-time clock or NTP can be
//! years apart: a node whose hybrid clock was pulled years ahead by one peer's event must not
//! take its own fresh events for ancient, and an event written minutes ago by an author whose
//! clock is years behind must not be dropped on arrival. Under quota pressure the oldest by
//! timestamp still go first.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use basis_core::body::Body;
use basis_core::encoding::decode_event;
use basis_core::{RoomId, Timestamp};
use rusqlite::{Connection, params};

use crate::error::StoreError;
use crate::ids::{self, IdIndex};
use crate::wire::wire;
use crate::writer::{StoreStats, ts_sql, used_bytes};

/// What to expire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiryPolicy {
    /// The node's hybrid clock now.
    pub now: Timestamp,
    /// The node's wall clock now, milliseconds since the epoch (arrival times are on it).
    pub wall_millis: u64,
    /// Default age limit of events, in milliseconds; `None` keeps events until the quota
    /// needs room.
    pub default_max_age_ms: Option<u64>,
    /// Most bytes of database pages in use; `None` for no quota.
    pub quota_bytes: Option<u64>,
}

/// What an expiry run removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpiryReport {
    /// Events removed because they were older than their room's retention.
    pub by_age: u64,
    /// Events removed to get under the quota.
    pub by_quota: u64,
    /// Bytes of database pages in use afterwards.
    pub used_bytes: u64,
}

/// Rows deleted per transaction, so that the writer never stalls long.
const CHUNK: i64 = 1000;
/// When over the quota, delete down to this share of it, so one new event does not trigger
/// another round at once.
const QUOTA_TARGET_PERCENT: u64 = 95;

pub(crate) fn run(
    conn: &mut Connection,
    policy: &ExpiryPolicy,
    stats: &StoreStats,
    ids: &IdIndex,
) -> Result<ExpiryReport, StoreError> {
    let mut report = ExpiryReport {
        by_age: expire_by_age(conn, policy, stats, ids)?,
        ..ExpiryReport::default()
    };
    report.by_quota = enforce_quota(conn, policy, stats, ids)?;
    report.used_bytes = stats.used_bytes.load(Ordering::Relaxed);
    Ok(report)
}

/// Latest `retention_secs` per room from settings events.
fn room_retention(conn: &Connection) -> Result<HashMap<RoomId, u64>, StoreError> {
    let mut stmt = conn.prepare(concat!(
        "SELECT ",
        wire_of_row!(),
        " FROM events WHERE kind = ?1 ORDER BY ts, id"
    ))?;
    let mut rows = stmt.query(params![2])?;
    let mut out = HashMap::new();
    while let Some(row) = rows.next()? {
        let raw = wire(row, 0)?;
        // Stored events were validated; one that no longer decodes is skipped, not fatal.
        let Ok(event) = decode_event(&raw) else {
            continue;
        };
        if let (Body::Settings(s), Some(room)) = (&event.content.body, event.content.room)
            && let Some(secs) = s.retention_secs
        {
            out.insert(room, secs);
        }
    }
    Ok(out)
}

fn cutoff(now: Timestamp, age_ms: u64) -> i64 {
    ts_sql(Timestamp::new(now.millis().saturating_sub(age_ms), 0))
}

/// Arrival times (local wall clock, ms) before which an event is old enough to go.
fn arrived_before(policy: &ExpiryPolicy, age_ms: u64) -> i64 {
    i64::try_from(policy.wall_millis.saturating_sub(age_ms)).unwrap_or(i64::MAX)
}

fn delete_returning(
    conn: &mut Connection,
    sql: &str,
    args: impl rusqlite::Params,
    stats: &StoreStats,
    ids: &IdIndex,
) -> Result<u64, StoreError> {
    let tx = conn.transaction().map_err(StoreError::from_sqlite)?;
    let (count, bytes, gone) = {
        let mut stmt = tx.prepare_cached(sql).map_err(StoreError::from_sqlite)?;
        let rows = stmt
            .query_map(args, |r| {
                let key = ids::key_of(r.get_ref(2)?.as_blob()?);
                Ok((r.get::<_, i64>(0)?, (key, r.get::<_, i64>(1)?)))
            })
            .map_err(StoreError::from_sqlite)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(StoreError::from_sqlite)?;
        let bytes = rows.iter().map(|(size, _)| size).sum::<i64>() as u64;
        let gone: Vec<(u64, i64)> = rows.into_iter().map(|(_, entry)| entry).collect();
        (gone.len() as u64, bytes, gone)
    };
    tx.commit().map_err(StoreError::from_sqlite)?;
    ids.remove(&gone);
    stats.events.fetch_sub(count, Ordering::Relaxed);
    stats.event_bytes.fetch_sub(bytes, Ordering::Relaxed);
    stats.expired.fetch_add(count, Ordering::Relaxed);
    stats.used_bytes.store(used_bytes(conn)?, Ordering::Relaxed);
    Ok(count)
}

fn expire_by_age(
    conn: &mut Connection,
    policy: &ExpiryPolicy,
    stats: &StoreStats,
    ids: &IdIndex,
) -> Result<u64, StoreError> {
    let overrides = room_retention(conn)?;
    let mut removed = 0;
    for (room, secs) in &overrides {
        if *secs == 0 {
            continue;
        }
        let age = secs.saturating_mul(1000);
        let (limit, arrived) = (cutoff(policy.now, age), arrived_before(policy, age));
        loop {
            let n = delete_returning(
                conn,
                concat!(
                    "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE room = ",
                    room_number_of_param!(),
                    " AND ts < ?2 AND received_at < ?3 LIMIT ?4) RETURNING ",
                    wire_len_of_row!(),
                    ", seq, id"
                ),
                params![room.as_bytes(), limit, arrived, CHUNK],
                stats,
                ids,
            )?;
            removed += n;
            if n == 0 {
                break;
            }
        }
    }
    let Some(age) = policy.default_max_age_ms else {
        return Ok(removed);
    };
    let (limit, arrived) = (cutoff(policy.now, age), arrived_before(policy, age));
    // Walk old events in (ts, seq) order, skipping rooms with their own retention.
    let mut after = (i64::MIN, i64::MIN);
    loop {
        let rows: Vec<(i64, i64, Vec<u8>, bool)> = {
            let mut stmt = conn.prepare_cached(concat!(
                "SELECT seq, ts, ",
                room_id_of_row!(),
                ", received_at < ?5 FROM events \
                 WHERE ts < ?1 AND (ts, seq) > (?2, ?3) ORDER BY ts, seq LIMIT ?4"
            ))?;
            stmt.query_map(params![limit, after.0, after.1, CHUNK, arrived], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get::<_, bool>(3)?))
            })?
            .collect::<Result<_, _>>()?
        };
        let Some(last) = rows.last() else {
            break;
        };
        after = (last.1, last.0);
        let doomed: Vec<i64> = rows
            .iter()
            .filter(|(_, _, room, arrived_long_ago)| {
                *arrived_long_ago
                    && RoomId::from_slice(room).is_none_or(|r| !overrides.contains_key(&r))
            })
            .map(|(seq, _, _, _)| *seq)
            .collect();
        if doomed.is_empty() {
            continue;
        }
        let list = doomed
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        removed += delete_returning(
            conn,
            &format!(
                concat!(
                    "DELETE FROM events WHERE seq IN ({}) RETURNING ",
                    wire_len_of_row!(),
                    ", seq, id"
                ),
                list
            ),
            [],
            stats,
            ids,
        )?;
    }
    Ok(removed)
}

pub(crate) fn enforce_quota(
    conn: &mut Connection,
    policy: &ExpiryPolicy,
    stats: &StoreStats,
    ids: &IdIndex,
) -> Result<u64, StoreError> {
    let Some(quota) = policy.quota_bytes else {
        return Ok(0);
    };
    let target = quota / 100 * QUOTA_TARGET_PERCENT;
    let mut removed = 0;
    while used_bytes(conn)? > target {
        let n = delete_returning(
            conn,
            concat!(
                "DELETE FROM events WHERE seq IN (SELECT seq FROM events ORDER BY ts LIMIT ?1) \
                 RETURNING ",
                wire_len_of_row!(),
                ", seq, id"
            ),
            params![CHUNK],
            stats,
            ids,
        )?;
        removed += n;
        if n == 0 {
            break;
        }
    }
    if removed > 0 {
        log::info!(
            "store: removed the {removed} oldest events to stay under the quota of {quota} bytes"
        );
    }
    Ok(removed)
}
