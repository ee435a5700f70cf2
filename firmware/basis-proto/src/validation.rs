//! Validating a frame's events on every core.
//!
//! A node catching up receives frames of up to 1 500 events, and checking each event's
//! signature is most of what receiving costs. [`validate_all`] splits a frame's events over
//! the machine's cores (the calling thread takes one share) and gives the results in the order
//! of the events. Each event is checked on its own, with the same strict check as anywhere
//! else: a batched signature check uses a different equation, which a forged signature can
//! pass while failing the single check, and two nodes must never disagree on whether an event
//! is valid.

use basis_core::EventError;
use basis_core::validate::{ValidEvent, validate};

/// Below this many events the calling thread checks them all: starting threads would cost
/// more than it saves.
pub const PARALLEL_FROM: usize = 32;

/// Validates each of `raws` (as [`validate`] does), on every core when there are enough;
/// the results are in the order of `raws`.
pub fn validate_all(raws: &[Vec<u8>]) -> Vec<Result<ValidEvent, EventError>> {
    validate_on(raws, cores())
}

/// The cores this process may use, asked of the system once. Asking is not cheap: on Linux
/// the standard library reads the process's cgroup files and `/proc/self/mountinfo` each
/// time, and asked for every frame of events it took a fifth of a busy node's CPU in the
/// 50-node lab, as much as checking the signatures.
fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// [`validate_all`] on at most `threads` threads. A thread the system cannot start leaves its
/// share to the calling thread.
pub fn validate_on(raws: &[Vec<u8>], threads: usize) -> Vec<Result<ValidEvent, EventError>> {
    let check = |part: &[Vec<u8>]| -> Vec<Result<ValidEvent, EventError>> {
        part.iter().map(|raw| validate(raw)).collect()
    };
    if threads < 2 || raws.len() < PARALLEL_FROM {
        return check(raws);
    }
    let share = raws.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let mut parts = raws.chunks(share);
        let own = parts.next().unwrap_or_default();
        let started: Vec<_> = parts
            .map(|part| {
                let thread = std::thread::Builder::new()
                    .name("basis-validate".into())
                    .spawn_scoped(scope, move || check(part));
                (part, thread)
            })
            .collect();
        let mut out = check(own);
        for (part, thread) in started {
            match thread {
                Ok(handle) => match handle.join() {
                    Ok(results) => out.extend(results),
                    Err(panic) => std::panic::resume_unwind(panic),
                },
                Err(_) => out.extend(check(part)),
            }
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use basis_core::body::{Body, MessageBody};
    use basis_core::{EventContent, PROTOCOL_VERSION, RoomId, Timestamp, UserKey};

    fn message(i: usize) -> Vec<u8> {
        let key = UserKey::from_secret([9; 32]);
        EventContent {
            version: PROTOCOL_VERSION,
            room: Some(RoomId([1; 32])),
            author: key.id(),
            parents: vec![],
            time: Timestamp::new(1_700_000_000_000 + i as u64, 0),
            body: Body::Message(MessageBody::Text {
                text: format!("message {i}"),
            }),
        }
        .sign(&key)
        .to_bytes()
    }

    /// Every fifth event broken: a flipped signature byte, or bytes that are no event.
    fn frame(n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| {
                let mut raw = message(i);
                match i % 5 {
                    1 => {
                        let last = raw.len() - 1;
                        raw[last] ^= 1;
                    }
                    3 => raw.truncate(7),
                    _ => {}
                }
                raw
            })
            .collect()
    }

    #[test]
    fn results_come_in_the_order_of_the_events_whatever_the_threads() {
        let raws = frame(101);
        let one: Vec<_> = raws.iter().map(|r| validate(r)).collect();
        for threads in [1, 2, 3, 8, 200] {
            let all = validate_on(&raws, threads);
            assert_eq!(all, one, "{threads} threads");
        }
        let ids: Vec<_> = validate_all(&raws)
            .into_iter()
            .map(|r| r.map(|e| e.id()).ok())
            .collect();
        let expected: Vec<_> = raws
            .iter()
            .enumerate()
            .map(|(i, r)| (i % 5 != 1 && i % 5 != 3).then(|| basis_core::event::id_of(r)))
            .collect();
        assert_eq!(ids, expected);
    }

    #[test]
    fn a_forged_signature_is_refused_in_a_large_frame_as_in_a_small_one() {
        let mut raws = frame(PARALLEL_FROM * 4);
        raws.retain(|r| validate(r).is_ok());
        let last = raws.len() - 1;
        let end = raws[last].len() - 1;
        raws[last][end] ^= 0x80;
        let results = validate_on(&raws, 4);
        assert!(results[..last].iter().all(Result::is_ok));
        assert!(matches!(
            results[last],
            Err(EventError::BadSignature { .. })
        ));
        assert!(results.len() > PARALLEL_FROM);
    }

    #[test]
    fn an_empty_frame_gives_nothing() {
        assert!(validate_all(&[]).is_empty());
    }
}
