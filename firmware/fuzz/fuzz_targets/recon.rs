//! Fuzz target `recon`: the reconciliation handler and the per-link state machine
//! (`basis_proto::recon`, `basis_proto::Link`) fed by a hostile peer.
//!
//! The node under test holds a fixed set of 51 events (`basis_fuzz::local_items`). The first
//! input byte picks a mode (`basis_fuzz::chunks`), the rest is a list of chunks:
//! - responder / initiator: each chunk is an incoming negentropy message;
//! - link (acceptor or dialer): the link is admitted with a correct proof of the fixture
//!   federation (unless the `NO_ADMISSION` bit is set), then each chunk is a frame from the
//!   peer: raw bytes, a negentropy message in a `Recon` frame, one event in an `Events` frame,
//!   or time passing.
//!
//! Checks, beyond "never panics": an error is an `Err`, never a crash; every frame the link
//! sends decodes and fits the frame limit; bytes that are not a frame cost the peer points and
//! close the link; a closed link stays closed and silent; every penalty costs points; the
//! events a finished reconciliation offers to send are events the node holds.
#![no_main]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use basis_core::EventId;
use basis_fuzz::chunks::{self, EVENT, INITIATOR, NO_ADMISSION, RAW, RECON, RESPONDER, TICK};
use basis_fuzz::{EXPORTER, FixedItems, LOCAL, PEER, config, local_items, peer_hello};
use basis_proto::frame::Frame;
use basis_proto::limits::MAX_FRAME;
use basis_proto::recon::{Initiator, Responder, Step};
use basis_proto::{Action, Link, Role};
use libfuzzer_sys::fuzz_target;

fn responder(input: &[(u8, &[u8])]) {
    let mut resp = Responder::new(local_items()).expect("a responder over the fixture");
    for (_, message) in input {
        if resp.reply(message).is_err() {
            return;
        }
    }
}

fn initiator(input: &[(u8, &[u8])]) {
    let local: HashSet<EventId> = local_items().into_iter().map(|(_, id)| id).collect();
    let (mut init, _first) = Initiator::start(local_items()).expect("an initiator");
    for (_, reply) in input {
        match init.step(reply) {
            Ok(Step::Continue(_)) => {}
            Ok(Step::Done { have, .. }) => {
                assert!(
                    have.iter().all(|id| local.contains(id)),
                    "offered an unknown id"
                );
                return;
            }
            Err(_) => return,
        }
    }
}

/// Checks what the link answered to one input, then returns whether it closed.
fn check_actions(actions: &[Action], local: &HashSet<EventId>) -> bool {
    let mut closed = false;
    let mut after_reconciled = false;
    for action in actions {
        match action {
            Action::Send(frame) => {
                let bytes = frame.encode();
                assert!(
                    bytes.len() <= MAX_FRAME,
                    "sent a frame of {} bytes",
                    bytes.len()
                );
                assert_eq!(
                    Frame::decode(&bytes).as_ref(),
                    Ok(frame),
                    "sent a frame that does not decode"
                );
            }
            Action::Penalize { points, .. } => assert!(*points > 0, "a penalty of 0 points"),
            Action::Close(_) => closed = true,
            Action::Reconciled { .. } => {
                after_reconciled = true;
                continue;
            }
            Action::SendEvents(ids) if after_reconciled => {
                assert!(
                    ids.iter().all(|id| local.contains(id)),
                    "offered an unknown id"
                );
            }
            _ => {}
        }
        after_reconciled = false;
    }
    closed
}

fn link(role: Role, admit: bool, input: &[(u8, &[u8])]) {
    let local: HashSet<EventId> = local_items().into_iter().map(|(_, id)| id).collect();
    let mut store = FixedItems(local_items());
    let mut now = Instant::now();
    let (mut link, hello) = Link::new(config(LOCAL), role, PEER, EXPORTER);
    check_actions(&hello, &local);
    let mut closed = false;
    if admit {
        let acts = link.on_frame(&peer_hello(role).encode(), now, &mut store);
        assert!(
            acts.iter().any(|a| matches!(a, Action::Admitted { .. })),
            "a correct proof was refused: {acts:?}"
        );
        closed = check_actions(&acts, &local);
        assert!(link.is_open());
    }
    for (tag, payload) in input {
        let acts = match tag % 4 {
            TICK => {
                now += Duration::from_secs(60 * u64::from(payload.first().copied().unwrap_or(1)));
                link.on_tick(now, &mut store)
            }
            kind => {
                let bytes = match kind {
                    RAW => payload.to_vec(),
                    RECON => Frame::Recon(payload.to_vec()).encode(),
                    EVENT => Frame::Events(vec![payload.to_vec()]).encode(),
                    _ => unreachable!(),
                };
                let garbage = Frame::decode(&bytes).is_err();
                let acts = link.on_frame(&bytes, now, &mut store);
                if closed {
                    assert!(acts.is_empty(), "a closed link answered: {acts:?}");
                } else if garbage {
                    assert!(
                        acts.iter().any(|a| matches!(a, Action::Penalize { .. }))
                            && acts.iter().any(|a| matches!(a, Action::Close(_))),
                        "garbage went unpunished: {acts:?}"
                    );
                }
                acts
            }
        };
        closed |= check_actions(&acts, &local);
        if closed {
            assert!(!link.is_open(), "the link closed but says it is open");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let input = chunks::split(rest);
    match mode & 3 {
        RESPONDER => responder(&input),
        INITIATOR => initiator(&input),
        m => {
            let role = if m == chunks::LINK_ACCEPTOR {
                Role::Acceptor
            } else {
                Role::Dialer
            };
            link(role, mode & NO_ADMISSION == 0, &input);
        }
    }
});
