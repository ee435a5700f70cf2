//! An event's wire bytes from its row: `raw`, with the room and author keys put back where
//! the row keeps them as numbers (schema version 6). Public for code that reads a database
//! file with SQL of its own (tests, tools): select [`COLUMNS`] and pass the row to [`wire`].

use basis_core::compact::expand;
use basis_core::{RoomId, UserId};
use rusqlite::Row;
use rusqlite::types::Type;

/// SQL for the four columns [`wire`] reads, in a query over `events`.
pub const COLUMNS: &str = wire_of_row!();

/// SQL for the wire size of an `events` row (what `length(raw)` gave before version 6).
pub const LEN: &str = wire_len_of_row!();

/// The wire bytes of the row at hand, from the four columns of [`COLUMNS`], starting at
/// `idx`. A row that does not expand (which only a damaged database holds: its room or its
/// author missing from their tables) is an error, never wrong bytes.
pub fn wire(row: &Row, idx: usize) -> rusqlite::Result<Vec<u8>> {
    let raw: Vec<u8> = row.get(idx)?;
    if row.get::<_, Option<i64>>(idx + 2)?.is_none() {
        return Ok(raw);
    }
    let room = row.get::<_, Option<Vec<u8>>>(idx + 1)?;
    let room = room.as_deref().and_then(RoomId::from_slice);
    let author = row.get::<_, Option<Vec<u8>>>(idx + 3)?;
    let author = author.as_deref().and_then(UserId::from_slice);
    room.zip(author)
        .and_then(|(room, author)| expand(&raw, &room, &author))
        .ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                idx,
                Type::Blob,
                "a stored event whose room or author is missing".into(),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::migrations;
    use rusqlite::{Connection, params};

    fn database() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        migrations().to_latest(&mut conn).unwrap();
        conn.execute_batch(
            "INSERT INTO rooms (id) VALUES (zeroblob(32));
             INSERT INTO authors (id) VALUES (randomblob(32));",
        )
        .unwrap();
        conn
    }

    fn read(conn: &Connection, seq: i64) -> rusqlite::Result<Vec<u8>> {
        let sql = format!("SELECT {COLUMNS}, {LEN} FROM events WHERE seq = ?1");
        conn.query_row(&sql, [seq], |r| {
            let bytes = wire(r, 0)?;
            assert_eq!(r.get::<_, i64>(4)?, bytes.len() as i64, "LEN");
            Ok(bytes)
        })
    }

    #[test]
    fn a_row_without_an_author_is_read_as_it_is_and_one_naming_a_missing_author_is_an_error() {
        let conn = database();
        let whole = [7u8; 150];
        let insert = "INSERT INTO events (seq, id, room, author, kind, ts, received_at, raw)
                      VALUES (?1, randomblob(32), 1, ?2, 4, 0, 0, ?3)";
        conn.execute(insert, params![1, None::<i64>, &whole[..]])
            .unwrap();
        assert_eq!(read(&conn, 1).unwrap(), whole);
        // Author 9 is not in `authors`: the row cannot be made whole, and says so.
        let kept = [basis_core::PROTOCOL_VERSION, 1, 42];
        conn.execute(insert, params![2, Some(9), &kept[..]])
            .unwrap();
        assert!(matches!(
            read(&conn, 2),
            Err(rusqlite::Error::FromSqlConversionFailure(0, Type::Blob, _))
        ));
        // With author 1 it expands: version, tag, room, author, the rest.
        conn.execute("UPDATE events SET author = 1 WHERE seq = 2", [])
            .unwrap();
        let got = read(&conn, 2).unwrap();
        assert_eq!(got.len(), 3 + 64);
        assert_eq!(
            (&got[..2], &got[2..34], got[66]),
            (&kept[..2], &[0u8; 32][..], 42)
        );
    }
}
