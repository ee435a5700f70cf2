//! Store behaviour as the node relies on it.

use basis_core::body::{Body, History, MessageBody, RoomCreate, RoomSettings};
use basis_core::validate::{ValidEvent, validate_event};
use basis_core::{EventContent, EventId, PROTOCOL_VERSION, RoomId, Timestamp, UserKey};
use basis_store::{Cursor, ExpiryPolicy, PAGE_SIZE, Store, StoreError, StoreOptions};

const DAY_MS: u64 = 24 * 3600 * 1000;
const T0: u64 = 1_700_000_000_000;

fn key() -> UserKey {
    UserKey::from_secret([5; 32])
}

fn create(name: &str) -> ValidEvent {
    let content = EventContent {
        version: PROTOCOL_VERSION,
        room: None,
        author: key().id(),
        parents: vec![],
        time: Timestamp::new(T0, 0),
        body: Body::Create(RoomCreate {
            name: name.into(),
            encrypted: false,
            history: History::SinceJoin,
        }),
    };
    validate_event(content.sign(&key())).unwrap()
}

fn event(room: RoomId, millis: u64, body: Body) -> ValidEvent {
    let content = EventContent {
        version: PROTOCOL_VERSION,
        room: Some(room),
        author: key().id(),
        parents: vec![],
        time: Timestamp::new(millis, 0),
        body,
    };
    validate_event(content.sign(&key())).unwrap()
}

fn text(room: RoomId, millis: u64, text: &str) -> ValidEvent {
    event(
        room,
        millis,
        Body::Message(MessageBody::Text { text: text.into() }),
    )
}

fn wall_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn open(dir: &tempfile::TempDir) -> Store {
    Store::open(&dir.path().join("basis.db"), &StoreOptions::default()).unwrap()
}

#[test]
fn inserts_report_new_and_duplicates_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let room = create("r");
    let rid = room.room();
    let m = text(rid, T0 + 1, "hello");
    let w = store.writer();
    let first = w.insert_blocking(vec![room.clone(), m.clone()]).unwrap();
    assert!(first.iter().all(|i| i.new));
    let again = w.insert_blocking(vec![m.clone()]).unwrap();
    assert!(!again[0].new);
    assert_eq!(
        store
            .stats()
            .events
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
    store.close().unwrap();

    let store = open(&dir);
    let got = store.readers().get(&m.id()).unwrap().unwrap();
    assert_eq!(got.raw, m.bytes());
    assert_eq!(got.room, rid);
    assert_eq!(
        store
            .stats()
            .events
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
    assert!(store.readers().integrity_check().unwrap().is_empty());
}

/// The page size of a database file, read as any SQLite tool would.
fn page_size(path: &std::path::Path) -> i64 {
    rusqlite::Connection::open(path)
        .unwrap()
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn a_new_store_has_small_pages_and_a_store_made_with_large_ones_is_moved_to_them_whole() {
    let room = create("r");
    let rid = room.room();
    let m = text(rid, T0 + 1, "hello");

    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store
        .writer()
        .insert_blocking(vec![room.clone(), m.clone()])
        .unwrap();
    store.close().unwrap();
    let made = page_size(&dir.path().join("basis.db"));
    assert_eq!(made, PAGE_SIZE);
    assert!(made < 4096, "smaller than SQLite's default, {made}");

    // A store with SQLite's default 4 KiB pages, as earlier versions made them: the file
    // exists with its page size fixed before the store first opens it.
    let old = tempfile::tempdir().unwrap();
    let path = old.path().join("basis.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.pragma_update(None, "page_size", 4096).unwrap();
        conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))
            .unwrap();
    }
    let store = open(&old);
    let mut events = vec![room];
    events.extend((0..500).map(|i| text(rid, T0 + 2 + i, &format!("message {i}"))));
    store.writer().insert_blocking(events.clone()).unwrap();
    store.writer().insert_blocking(vec![m.clone()]).unwrap();
    store.close().unwrap();
    assert_eq!(page_size(&path), 4096);
    // What a power cut in the middle of an earlier move would have left beside it.
    let stale = old.path().join("basis.db.pages");
    std::fs::write(&stale, b"half a copy").unwrap();

    let store = open(&old);
    assert_eq!(page_size(&path), PAGE_SIZE, "moved to small pages");
    assert!(
        !stale.exists(),
        "the copy is renamed over the store, not left beside it"
    );
    for e in events.iter().chain([&m]) {
        assert_eq!(
            store.readers().get(&e.id()).unwrap().unwrap().raw,
            e.bytes()
        );
    }
    assert_eq!(
        store
            .stats()
            .events
            .load(std::sync::atomic::Ordering::Relaxed),
        502
    );
    assert!(store.readers().integrity_check().unwrap().is_empty());
    // It goes on taking events, and keeps them across another start.
    let later = text(rid, T0 + 1000, "after the move");
    assert!(store.writer().insert_blocking(vec![later.clone()]).unwrap()[0].new);
    store.close().unwrap();
    let store = open(&old);
    assert!(store.readers().get(&later.id()).unwrap().is_some());
    store.close().unwrap();
    assert_eq!(page_size(&path), PAGE_SIZE);
}

#[test]
fn a_commit_of_events_in_any_order_answers_each_caller_for_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let room = create("r");
    let rid = room.room();
    let w = store.writer();
    w.insert_blocking(vec![room.clone()]).unwrap();
    // Newest first, with a repeat inside the batch and one already held: the writer stores
    // them in time order, but each result still belongs to its own event.
    let m: Vec<_> = (0..6).map(|i| text(rid, T0 + 1 + i, "m")).collect();
    let batch = vec![
        m[5].clone(),
        m[4].clone(),
        room.clone(),
        m[3].clone(),
        m[4].clone(),
        m[0].clone(),
    ];
    let got = w.insert_blocking(batch.clone()).unwrap();
    let ids: Vec<_> = got.iter().map(|i| i.id).collect();
    assert_eq!(ids, batch.iter().map(|e| e.id()).collect::<Vec<_>>());
    let new: Vec<_> = got.iter().map(|i| i.new).collect();
    assert_eq!(new, [true, true, false, true, false, true]);
    let r = store.readers();
    for e in [&m[0], &m[3], &m[4], &m[5]] {
        assert_eq!(r.get(&e.id()).unwrap().unwrap().raw, e.bytes());
    }
    assert!(!r.contains(&m[1].id()).unwrap());
    assert_eq!(r.get_many(&[m[1].id(), m[3].id()]).unwrap().len(), 1);
    assert_eq!(
        r.raw_many(&[m[5].id(), m[2].id(), m[0].id()])
            .unwrap()
            .len(),
        2
    );
    // The feed follows the newest row.
    assert_eq!(*store.committed().borrow(), 5);
}

#[test]
fn an_expired_event_is_gone_by_id_and_can_be_stored_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let room = create("r");
    let rid = room.room();
    let old = text(rid, T0 + 1, "old");
    let w = store.writer();
    w.insert_blocking(vec![room, old.clone()]).unwrap();
    let report = w
        .expire_blocking(ExpiryPolicy {
            now: Timestamp::new(T0 + 400 * DAY_MS, 0),
            wall_millis: wall_now() + 400 * DAY_MS,
            default_max_age_ms: Some(DAY_MS),
            quota_bytes: None,
        })
        .unwrap();
    assert_eq!(report.by_age, 2);
    let r = store.readers();
    assert!(!r.contains(&old.id()).unwrap());
    assert!(r.newest_first(&[old.id()]).unwrap().is_empty());
    assert!(w.insert_blocking(vec![old.clone()]).unwrap()[0].new);
    assert!(r.contains(&old.id()).unwrap());
    store.close().unwrap();
    let store = open(&dir);
    assert!(store.readers().contains(&old.id()).unwrap());
}

/// A store holding a new room and 95 messages in it, three a millisecond (so the id orders
/// events of one timestamp); gives the store and the events, the room's creation first.
fn room_of_95(dir: &tempfile::TempDir) -> (Store, Vec<ValidEvent>) {
    let store = open(dir);
    let room = create("r");
    let rid = room.room();
    let mut events = vec![room];
    for i in 0..95u64 {
        events.push(text(rid, T0 + 1 + i / 3, &format!("m{i}")));
    }
    store.writer().insert_blocking(events.clone()).unwrap();
    (store, events)
}

#[test]
fn history_pages_newest_first_without_gaps_or_repeats() {
    let dir = tempfile::tempdir().unwrap();
    let (store, events) = room_of_95(&dir);
    let rid = events[0].room();
    let mut seen = Vec::new();
    let mut before: Option<Cursor> = None;
    for page_size in [7usize, 30, 1, 100].iter().cycle() {
        let page = store.readers().history(&rid, before, *page_size).unwrap();
        seen.extend(page.events.iter().map(|e| (e.time, e.id)));
        match page.older {
            Some(c) => before = Some(c),
            None => break,
        }
    }
    let mut expected: Vec<_> = events
        .iter()
        .map(|e| (e.event().content.time, e.id()))
        .collect();
    expected.sort();
    expected.reverse();
    assert_eq!(seen, expected);
}

#[test]
fn events_newer_than_a_time_come_in_pages_newest_first_without_gaps_or_repeats() {
    let dir = tempfile::tempdir().unwrap();
    let (store, events) = room_of_95(&dir);
    let mut expected: Vec<_> = events
        .iter()
        .map(|e| (e.event().content.time.0, e.id()))
        .collect();
    expected.sort();
    expected.reverse();
    for after in [None, Some(events[40].event().content.time.0)] {
        let mut seen = Vec::new();
        let mut before = None;
        for limit in [7usize, 30, 1, 100].iter().cycle() {
            let page = store.readers().newer_page(after, before, *limit).unwrap();
            for (ts, id, raw) in &page {
                assert_eq!(
                    basis_core::event::id_of(raw),
                    *id,
                    "the bytes of that event"
                );
                seen.push((*ts, *id));
            }
            match page.last() {
                Some((ts, id, _)) if page.len() == *limit => before = Some((*ts, *id)),
                _ => break,
            }
        }
        let want: Vec<_> = expected
            .iter()
            .copied()
            .filter(|(ts, _)| after.is_none_or(|a| *ts > a))
            .collect();
        assert_eq!(seen, want, "after {after:?}");
    }
    assert!(
        store
            .readers()
            .newer_page(Some(u64::MAX), None, 10)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn reconciliation_slices_read_only_their_span_and_end_where_the_index_says() {
    let dir = tempfile::tempdir().unwrap();
    let (store, events) = room_of_95(&dir);
    let mut all: Vec<(u64, EventId)> = events
        .iter()
        .map(|e| (e.event().content.time.0, e.id()))
        .collect();
    all.sort();
    let readers = store.readers();
    assert_eq!(readers.newest_ts().unwrap(), all.last().map(|(ts, _)| *ts));
    let (from, to) = (all[10].0, all[40].0);
    let mut seen = Vec::new();
    readers
        .for_each_item(from, to, |ts, id| seen.push((ts, id)))
        .unwrap();
    let want: Vec<_> = all
        .iter()
        .copied()
        .filter(|(ts, _)| (from..=to).contains(ts))
        .collect();
    assert_eq!(
        seen, want,
        "ascending by (timestamp, id), both ends included"
    );
    let mut every = 0;
    readers
        .for_each_item(0, u64::MAX, |_, _| every += 1)
        .unwrap();
    assert_eq!(every, all.len());
    // Where a slice of n events that starts at `from` ends: the timestamp of the next one.
    let from_on: Vec<u64> = all
        .iter()
        .map(|(ts, _)| *ts)
        .filter(|ts| *ts >= from)
        .collect();
    for n in [0, 1, 5, from_on.len() - 1] {
        assert_eq!(
            readers.nth_ts_from(from, n).unwrap(),
            Some(from_on[n]),
            "n = {n}"
        );
    }
    assert_eq!(readers.nth_ts_from(from, from_on.len()).unwrap(), None);
    assert_eq!(readers.nth_ts_from(u64::MAX, 0).unwrap(), None);
}

#[test]
fn cursor_text_round_trips_and_bad_text_is_refused() {
    let c = Cursor {
        time: Timestamp::new(T0, 3),
        id: basis_core::EventId([9; 32]),
    };
    assert_eq!(c.to_string().parse::<Cursor>().unwrap(), c);
    assert!("nonsense".parse::<Cursor>().is_err());
}

#[test]
fn ranges_list_items_in_order_within_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let room = create("r");
    let rid = room.room();
    let events: Vec<_> = (0..20).map(|i| text(rid, T0 + 10 * i, "x")).collect();
    store.writer().insert_blocking(events).unwrap();
    let lo = Cursor {
        time: Timestamp::new(T0 + 50, 0),
        id: basis_core::EventId([0; 32]),
    };
    let hi = Cursor {
        time: Timestamp::new(T0 + 100, 0),
        id: basis_core::EventId([0; 32]),
    };
    let items = store.readers().range(&rid, lo, hi, 1000).unwrap();
    let millis: Vec<u64> = items.iter().map(|(t, _)| t.millis()).collect();
    assert_eq!(millis, vec![T0 + 50, T0 + 60, T0 + 70, T0 + 80, T0 + 90]);
}

#[test]
fn expiry_by_default_age_and_by_room_setting() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let (a, b) = (create("a"), create("b"));
    let (ra, rb) = (a.room(), b.room());
    let now = T0 + 100 * DAY_MS;
    let mut events = vec![a, b];
    for day in [1, 50, 95, 99] {
        events.push(text(ra, now - day * DAY_MS, &format!("a{day}")));
        events.push(text(rb, now - day * DAY_MS, &format!("b{day}")));
    }
    // Room b keeps 2 days, room a follows the node's default of 60 days.
    events.push(event(
        rb,
        now - 1000,
        Body::Settings(RoomSettings {
            retention_secs: Some(2 * 24 * 3600),
            ..RoomSettings::default()
        }),
    ));
    store.writer().insert_blocking(events).unwrap();
    let report = store
        .writer()
        .expire_blocking(ExpiryPolicy {
            now: Timestamp::new(now, 0),
            // Long after the events arrived: only their timestamps decide here.
            wall_millis: wall_now() + 1000 * DAY_MS,
            default_max_age_ms: Some(60 * DAY_MS),
            quota_bytes: None,
        })
        .unwrap();
    let texts = |room| {
        let page = store.readers().history(&room, None, 100).unwrap();
        page.events.len()
    };
    // a: the create event (T0, 100 days old) and the 95/99-day texts go; 1 and 50 stay.
    assert_eq!(texts(ra), 2);
    // b: only events younger than 2 days stay: the 1-day text and the settings event.
    assert_eq!(texts(rb), 2);
    assert_eq!(report.by_age, 3 + 4);
    // The bytes a node reports holding are the wire size of what is left: counted down as
    // events expired, and counted again from the database at the next open.
    let wire_left = |store: &Store| -> u64 {
        let left = store.readers().since(0, 1000).unwrap();
        assert_eq!(left.len(), 4);
        left.iter().map(|(_, e)| e.raw.len() as u64).sum()
    };
    let bytes = |store: &Store| {
        let stats = store.stats();
        stats.event_bytes.load(std::sync::atomic::Ordering::Relaxed)
    };
    assert_eq!(bytes(&store), wire_left(&store));
    store.close().unwrap();
    let store = open(&dir);
    assert_eq!(bytes(&store), wire_left(&store));
}

#[test]
fn quota_removes_oldest_first_and_holds() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let room = create("r");
    let rid = room.room();
    store.writer().insert_blocking(vec![room]).unwrap();
    let body = "y".repeat(2000);
    let events: Vec<_> = (0..2000).map(|i| text(rid, T0 + 1 + i, &body)).collect();
    for chunk in events.chunks(200) {
        store.writer().insert_blocking(chunk.to_vec()).unwrap();
    }
    let quota = 1_000_000;
    let report = store
        .writer()
        .expire_blocking(ExpiryPolicy {
            now: Timestamp::new(T0 + 10_000, 0),
            wall_millis: wall_now(),
            default_max_age_ms: None,
            quota_bytes: Some(quota),
        })
        .unwrap();
    assert!(report.by_quota > 0);
    assert!(report.used_bytes <= quota, "{report:?}");
    // The newest event survived; the oldest text did not.
    let r = store.readers();
    assert!(r.get(&events[1999].id()).unwrap().is_some());
    assert!(r.get(&events[0].id()).unwrap().is_none());
    // Later inserts keep the store under the quota without another explicit run.
    let more: Vec<_> = (0..600).map(|i| text(rid, T0 + 5000 + i, &body)).collect();
    for chunk in more.chunks(100) {
        store.writer().insert_blocking(chunk.to_vec()).unwrap();
    }
    // The writer enforces the quota right after answering a commit; an empty request queued
    // behind it returns once that is done.
    store.writer().insert_blocking(vec![]).unwrap();
    let used = store
        .stats()
        .used_bytes
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(used <= quota, "used {used} > quota {quota}");
}

#[test]
fn database_of_a_newer_schema_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("basis.db");
    open(&dir).close().unwrap();
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.pragma_update(None, "user_version", 99).unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    let err = match Store::open(&path, &StoreOptions::default()) {
        Err(e) => e,
        Ok(_) => panic!("newer schema was accepted"),
    };
    assert!(
        matches!(err, StoreError::NewerSchema { found: 99, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("newer Basis"));
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn foreign_and_garbage_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let foreign = dir.path().join("foreign.db");
    {
        let c = rusqlite::Connection::open(&foreign).unwrap();
        c.execute_batch("CREATE TABLE t(x); PRAGMA user_version = 3;")
            .unwrap();
    }
    let err = Store::open(&foreign, &StoreOptions::default())
        .err()
        .unwrap();
    assert!(matches!(err, StoreError::NotBasis { .. }), "{err}");

    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![0x42u8; 8192]).unwrap();
    let err = Store::open(&garbage, &StoreOptions::default())
        .err()
        .unwrap();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert_eq!(std::fs::read(&garbage).unwrap(), vec![0x42u8; 8192]);
}

/// Sends `n` messages to `room`, each in its own insert request, all at once; checks each
/// was stored.
async fn insert_one_by_one(store: &Store, room: RoomId, n: u64) {
    let mut tasks = Vec::new();
    for i in 0..n {
        let w = store.writer();
        let ev = text(room, T0 + 1 + i, "x");
        tasks.push(tokio::spawn(async move { w.insert(vec![ev]).await }));
    }
    for t in tasks {
        assert!(t.await.unwrap().unwrap()[0].new);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_are_grouped_into_few_commits() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let room = create("r");
    let rid = room.room();
    store.writer().insert(vec![room]).await.unwrap();
    insert_one_by_one(&store, rid, 400).await;
    let stats = store.stats();
    let commits = stats.commits.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(stats.events.load(std::sync::atomic::Ordering::Relaxed), 401);
    // 401 single-event requests; group commit must have merged at least some of them.
    assert!(commits < 401, "{commits} commits for 401 events");
    tokio::task::spawn_blocking(move || store.close())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_load_the_writer_waits_out_the_commit_gap_and_a_lone_event_does_not_wait() {
    use std::sync::atomic::Ordering::Relaxed;
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let gap = Duration::from_secs(1);
    let options = StoreOptions {
        commit_gap: gap,
        ..StoreOptions::default()
    };
    let store = Store::open(&dir.path().join("basis.db"), &options).unwrap();
    let stats = store.stats();
    let room = create("r");
    let rid = room.room();
    store.writer().insert(vec![room]).await.unwrap();
    assert_eq!(stats.commits.load(Relaxed), 1);
    // 40 events sent one by one right after a commit: one commit for all of them, made
    // when the gap since the last one has passed, and every caller answered after it.
    let started = Instant::now();
    insert_one_by_one(&store, rid, 40).await;
    let commits = stats.commits.load(Relaxed);
    assert!(commits <= 3, "{commits} commits for 41 events");
    assert_eq!(stats.events.load(Relaxed), 41);
    assert!(started.elapsed() < gap * 3);
    // Once writes stop for longer than the gap, a lone event is committed at once.
    tokio::time::sleep(gap + Duration::from_millis(200)).await;
    let lone = Instant::now();
    let writer = store.writer();
    let stored = writer.insert(vec![text(rid, T0 + 100, "alone")]).await;
    assert!(stored.unwrap()[0].new);
    let took = lone.elapsed();
    assert!(took < gap / 2, "a lone event waited {took:?}");
    tokio::task::spawn_blocking(move || store.close())
        .await
        .unwrap()
        .unwrap();
}

#[test]
fn known_peers_are_remembered_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let w = store.writer();
    w.remember_peer([1; 32], "10.0.0.1:7464".into());
    std::thread::sleep(std::time::Duration::from_millis(5));
    w.remember_peer([2; 32], "10.0.0.2:7464".into());
    std::thread::sleep(std::time::Duration::from_millis(5));
    w.remember_peer([1; 32], "10.0.0.9:7464".into());
    // A barrier: the writer handles requests in order.
    w.insert_blocking(vec![]).unwrap();
    store.close().unwrap();
    let store = open(&dir);
    let peers = store.readers().known_peers(10).unwrap();
    assert_eq!(
        peers,
        vec![
            ([1; 32], "10.0.0.9:7464".to_string()),
            ([2; 32], "10.0.0.2:7464".to_string())
        ]
    );
}

#[test]
fn the_feed_of_new_events_follows_commits_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut committed = store.committed();
    assert_eq!(*committed.borrow(), 0);
    let room = create("feed");
    let rid = room.room();
    let writer = store.writer();
    writer
        .insert_blocking(vec![room, text(rid, T0 + 1, "one")])
        .unwrap();
    assert!(committed.has_changed().unwrap());
    let head = *committed.borrow_and_update();
    let feed = store.readers().since(0, 100).unwrap();
    assert_eq!(feed.len(), 2);
    assert_eq!(feed.last().unwrap().0, head);
    // A duplicate stores nothing and wakes nobody.
    writer
        .insert_blocking(vec![text(rid, T0 + 1, "one")])
        .unwrap();
    assert!(!committed.has_changed().unwrap());
    writer
        .insert_blocking(vec![text(rid, T0 + 2, "two")])
        .unwrap();
    let after: Vec<_> = store.readers().since(head, 100).unwrap();
    assert_eq!(after.len(), 1);
    assert!(after[0].0 > head);
    // Only room-defining events are state: the create, not the messages.
    let state = store.readers().state_events(Some(&rid)).unwrap();
    assert_eq!(state.len(), 1);
    assert_eq!(store.readers().state_events(None).unwrap(), state);
    assert_eq!(store.readers().state_since(0, head).unwrap(), state);
    assert!(
        store
            .readers()
            .state_since(head, u64::MAX)
            .unwrap()
            .is_empty()
    );
    let last = after[0].0;
    store.close().unwrap();
    let store = open(&dir);
    assert_eq!(*store.committed().borrow(), last);
}

#[test]
fn followers_of_room_state_are_woken_by_room_defining_events_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut state = store.state_committed();
    let room = create("state");
    let rid = room.room();
    let writer = store.writer();
    writer
        .insert_blocking(vec![room, text(rid, T0 + 1, "one")])
        .unwrap();
    assert!(state.has_changed().unwrap());
    let create_seq = *state.borrow_and_update();
    assert_eq!(store.readers().state_since(0, create_seq).unwrap().len(), 1);
    assert!(create_seq < *store.committed().borrow());
    // Messages move the feed, not room state.
    writer
        .insert_blocking(vec![text(rid, T0 + 2, "two"), text(rid, T0 + 3, "three")])
        .unwrap();
    assert!(!state.has_changed().unwrap());
    // A settings change in a commit with a message: the watch names the settings' row.
    let settings = event(
        rid,
        T0 + 4,
        Body::Settings(RoomSettings {
            retention_secs: Some(3600),
            ..RoomSettings::default()
        }),
    );
    writer
        .insert_blocking(vec![settings, text(rid, T0 + 5, "five")])
        .unwrap();
    assert!(state.has_changed().unwrap());
    let settings_seq = *state.borrow_and_update();
    let new_state = store.readers().state_since(create_seq, u64::MAX).unwrap();
    assert_eq!(new_state.len(), 1);
    assert_eq!(
        store
            .readers()
            .state_since(create_seq, settings_seq)
            .unwrap(),
        new_state
    );
    assert!(settings_seq < *store.committed().borrow());
}

#[test]
fn clocks_years_apart_do_not_make_fresh_events_expire() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let room = create("r");
    let rid = room.room();
    // An author whose clock is 7 years behind wrote this minutes ago; it arrives now.
    let years = 7 * 365 * DAY_MS;
    let skewed = text(rid, wall_now() - years, "from a board without a clock");
    let fresh = text(rid, wall_now(), "now");
    store
        .writer()
        .insert_blocking(vec![room, skewed.clone(), fresh.clone()])
        .unwrap();
    // The node's hybrid clock was pulled 7 years ahead by another peer's event.
    let report = store
        .writer()
        .expire_blocking(ExpiryPolicy {
            now: Timestamp::new(wall_now() + years, 0),
            wall_millis: wall_now(),
            default_max_age_ms: Some(30 * DAY_MS),
            quota_bytes: None,
        })
        .unwrap();
    assert_eq!(report.by_age, 0, "nothing that just arrived is too old");
    let r = store.readers();
    assert!(r.get(&skewed.id()).unwrap().is_some());
    assert!(r.get(&fresh.id()).unwrap().is_some());
    // Once the events have been held longer than the limit too, they go.
    let report = store
        .writer()
        .expire_blocking(ExpiryPolicy {
            now: Timestamp::new(wall_now() + years + 31 * DAY_MS, 0),
            wall_millis: wall_now() + 31 * DAY_MS,
            default_max_age_ms: Some(30 * DAY_MS),
            quota_bytes: None,
        })
        .unwrap();
    assert_eq!(report.by_age, 3);
}

#[test]
fn per_room_items_events_and_backlog_counts() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let (a, b) = (create("a"), create("b"));
    let (ra, rb) = (a.room(), b.room());
    let w = store.writer();
    w.insert_blocking(vec![a.clone(), b.clone()]).unwrap();
    let readers = store.readers();
    let mark = readers.last_seq().unwrap();
    let msgs: Vec<ValidEvent> = (0..5).map(|i| text(ra, T0 + 10 + i, "in a")).collect();
    w.insert_blocking(msgs.clone()).unwrap();
    w.insert_blocking(vec![text(rb, T0 + 20, "in b")]).unwrap();

    let mut items = Vec::new();
    readers
        .for_each_item_in(&[ra], |ts, id| items.push((ts, id)))
        .unwrap();
    assert_eq!(items.len(), 6, "room a's creation and its 5 messages only");
    assert!(items.windows(2).all(|w| w[0] <= w[1]), "ascending");

    let (count, bytes) = readers.room_since(&ra, mark).unwrap();
    assert_eq!(count, 5);
    assert_eq!(
        bytes,
        msgs.iter().map(|m| m.bytes().len() as u64).sum::<u64>()
    );
    assert_eq!(
        readers
            .room_since(&rb, readers.last_seq().unwrap())
            .unwrap(),
        (0, 0)
    );

    let missing = text(rb, T0 + 99, "never stored").id();
    let got = readers.get_many(&[msgs[3].id(), missing, b.id()]).unwrap();
    let ids: Vec<_> = got.iter().map(|e| e.id).collect();
    assert_eq!(
        ids,
        vec![msgs[3].id(), b.id()],
        "held ones, in the order asked"
    );
}

#[test]
fn rooms_are_listed_with_their_current_name_counts_and_newest_event() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let general = create("general");
    let (g, later) = (general.room(), create("later"));
    let l = later.room();
    let renamed = event(
        g,
        T0 + 5,
        Body::Settings(RoomSettings {
            name: Some("town square".into()),
            retention_secs: None,
            history: None,
        }),
    );
    let events = vec![
        general.clone(),
        text(g, T0 + 1, "one"),
        renamed.clone(),
        later.clone(),
        text(l, T0 + 9, "newest"),
    ];
    let bytes = |evs: &[&ValidEvent]| evs.iter().map(|e| e.bytes().len() as u64).sum::<u64>();
    let g_bytes = bytes(&[&events[0], &events[1], &events[2]]);
    let l_bytes = bytes(&[&events[3], &events[4]]);
    store.writer().insert_blocking(events).unwrap();
    store.close().unwrap();

    let rooms = basis_store::list_rooms(&dir.path().join("basis.db")).unwrap();
    let summary: Vec<(RoomId, &str, u64, u64, u64)> = rooms
        .iter()
        .map(|r| {
            (
                r.room,
                r.name.as_str(),
                r.events,
                r.bytes,
                r.newest.millis(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (l, "later", 2, l_bytes, T0 + 9),
            (g, "town square", 3, g_bytes, T0 + 5),
        ]
    );
    let missing = basis_store::list_rooms(&dir.path().join("nothing.db"));
    assert!(missing.is_err());
}

#[test]
fn a_files_chunks_expire_with_the_message_that_names_them() {
    use basis_core::{BlobRef, ChunkList, FileDescriptor};
    use basis_store::{BlobStatus, BlobStore};
    use std::collections::HashSet;

    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let room = create("r");
    let rid = room.room();
    // A one-chunk file of 10 bytes (the store never opens chunks: any 26 bytes will do).
    let chunk = vec![7u8; 26];
    let list = ChunkList {
        chunk_size: 1024,
        size: 10,
        hashes: vec![basis_core::file::chunk_hash(&chunk)],
    };
    let blob: BlobRef = list.blob_ref();
    let file = event(
        rid,
        T0 + 1,
        Body::Message(MessageBody::Attachment(FileDescriptor {
            blob,
            name: "a.txt".into(),
            media_type: "text/plain".into(),
            key: [1; 32],
            preview: None,
        })),
    );
    let file_id = file.id();
    store
        .writer()
        .insert_blocking(vec![room, file, text(rid, T0 + 2, "hi")])
        .unwrap();
    let uses = store.readers().blob_refs().unwrap();
    assert_eq!(uses.len(), 1);
    assert_eq!(
        (uses[0].room, uses[0].event, uses[0].blob),
        (rid, file_id, blob)
    );

    let (blobs, _) = BlobStore::open(&dir.path().join("blobs"), None).unwrap();
    blobs.put_list(&blob, &list.to_bytes()).unwrap();
    blobs.put_chunk(&list, 0, &chunk).unwrap();
    let live: HashSet<[u8; 32]> = uses.iter().map(|u| u.blob.address).collect();
    assert_eq!(blobs.retain(&live, std::time::Duration::ZERO).unwrap(), 0);
    assert_eq!(blobs.status(&blob.address).unwrap(), BlobStatus::Complete);

    // The room's messages expire by age: the file goes with its message.
    store
        .writer()
        .expire_blocking(ExpiryPolicy {
            now: Timestamp::new(T0 + 10 * DAY_MS, 0),
            wall_millis: wall_now() + 10 * DAY_MS,
            default_max_age_ms: Some(DAY_MS),
            quota_bytes: None,
        })
        .unwrap();
    let live: HashSet<[u8; 32]> = store
        .readers()
        .blob_refs()
        .unwrap()
        .iter()
        .map(|u| u.blob.address)
        .collect();
    assert!(live.is_empty());
    assert!(blobs.retain(&live, std::time::Duration::ZERO).unwrap() > 0);
    assert_eq!(blobs.status(&blob.address).unwrap(), BlobStatus::Absent);
    assert_eq!(blobs.used_bytes(), 0);
}
