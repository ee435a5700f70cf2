//! A room as the client shows it: one page of history, decrypted, with edits, deletes,
//! reactions and receipts applied, and the members' names.

use std::collections::{HashMap, HashSet};

use anyhow::{Context, Result};
use basis_core::timeline::Timeline;
use basis_core::{Event, EventId, RoomId, UserId};

use super::crypto::RoomCrypto;
use super::session::{Session, verified};
use crate::api::types::RoomInfo;

/// Older pages read at most to find the key shares a page needs.
const KEY_SEARCH_PAGES: usize = 50;

/// One page of a room, ready to show.
pub struct RoomView {
    /// The room.
    pub info: RoomInfo,
    /// The timeline of the page (and the room's state events).
    pub timeline: Timeline,
    /// The events of the requested page.
    pub page: HashSet<EventId>,
    /// Cursor of the next older page.
    pub older: Option<String>,
    /// Profile names of the members.
    pub names: HashMap<UserId, String>,
}

impl RoomView {
    /// Loads a page (newest first from `before`) of the room.
    pub async fn load(
        s: &Session,
        info: RoomInfo,
        before: Option<&str>,
        limit: u32,
    ) -> Result<RoomView> {
        let room: RoomId = info.room.parse().context("the node sent a bad room id")?;
        let state = verified(&s.client.room_state(&room).await?);
        let page = s.client.history(&room, before, limit).await?;
        let events = verified(&page.events);
        let crypto = RoomCrypto::new(&s.dir, &s.secrets);
        let mut keys = crypto.load_keys(&room);
        crypto.absorb(&room, &mut keys, &events);
        let mut cursor = page.older.clone();
        let mut pages = 0;
        while crypto.missing(&room, &keys, &events) && pages < KEY_SEARCH_PAGES {
            let Some(c) = cursor.take() else { break };
            let older = s.client.history(&room, Some(&c), 500).await?;
            crypto.absorb(&room, &mut keys, &verified(&older.events));
            cursor = older.older;
            pages += 1;
        }
        let page_ids: HashSet<EventId> = events.iter().map(Event::id).collect();
        let mut all = state;
        all.retain(|e| !page_ids.contains(&e.id()));
        all.extend(events);
        let items = crypto.items(&room, &mut keys, all);
        crypto.save_keys(&room, &keys)?;
        let names = info
            .members
            .iter()
            .filter_map(|m| Some((m.user.parse().ok()?, m.name.clone()?)))
            .collect();
        Ok(RoomView {
            timeline: Timeline::build(&items),
            page: page_ids,
            older: page.older,
            names,
            info,
        })
    }
}
