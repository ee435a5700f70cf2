//! The durable event store of a Basis node, on SQLite.
//!
//! One writer thread owns the only write connection and commits events in groups (many events
//! per transaction); callers are answered only after the commit reached the disk, so an
//! acknowledged event survives `kill -9` and power loss. Readers use their own connections.
//! See `docs/ARCHITECTURE.md` for where this sits in the node.
//!
//! File chunks live beside the database in a [`BlobStore`] ([`blobs`]): files named by their
//! hash, written through a fsynced temporary file and a rename, with their own quota.

/// SQL for the number of the room whose 32-byte id is the parameter `?1`: event rows keep a
/// room's number, and the `rooms` table maps numbers to ids (schema version 5). For
/// `concat!`, so that each statement stays one literal.
macro_rules! room_number_of_param {
    () => {
        "(SELECT n FROM rooms WHERE id = ?1)"
    };
}

/// SQL for the 32-byte id of the room of the `events` row at hand (see
/// [`room_number_of_param`]).
macro_rules! room_id_of_row {
    () => {
        "(SELECT id FROM rooms WHERE n = events.room)"
    };
}

/// SQL for the four columns [`wire::wire`] reads (also [`wire::COLUMNS`]) to give back the
/// wire bytes of the `events` row at hand: `raw`, its room's id, its author's number and
/// that author's key. `raw` leaves the two keys out when the row names an author (schema
/// version 6; `basis_core::compact`).
macro_rules! wire_of_row {
    () => {
        "raw, (SELECT id FROM rooms WHERE n = events.room), events.author, \
         (SELECT id FROM authors WHERE n = events.author)"
    };
}

/// SQL for the wire size of the `events` row at hand (see [`wire_of_row`]): `raw`'s length
/// plus the keys it leaves out, 64 bytes, or 32 for a create event (room tag 0), which
/// names no room.
macro_rules! wire_len_of_row {
    () => {
        "(length(raw) + CASE WHEN events.author IS NULL THEN 0 \
         WHEN substr(raw, 2, 1) = x'00' THEN 32 ELSE 64 END)"
    };
}

/// SQL for the kinds the partial index `events_state` holds (schema version 3; see
/// `schema::STATE_KINDS`). A query must name exactly this list for SQLite to use the index.
macro_rules! state_kinds {
    () => {
        "(0, 1, 2, 6)"
    };
}

pub mod blobs;
mod check;
mod error;
mod expiry;
mod ids;
mod numbers;
mod open;
mod pages;
pub mod query;
mod readers;
mod schema;
pub mod wire;
mod writer;

pub use blobs::{BlobError, BlobStatus, BlobStore, Put};
pub use check::{CheckReport, RoomListing, check, list_rooms};
pub use error::StoreError;
pub use expiry::{ExpiryPolicy, ExpiryReport};
pub use open::{PAGE_SIZE, Store, StoreOptions};
pub use query::{BlobUse, Cursor, HistoryPage, RoomSummary, StoredEvent};
pub use readers::Readers;
pub use schema::SCHEMA_VERSION;
pub use writer::{Inserted, StoreStats, WriterHandle};
