//! The node's state in the admin socket's wire types (`basis_api::admin`): the one place
//! that knows both, so a renamed internal field never changes what the admin commands read.

use basis_api::admin::{Bridge, BridgeRoom, Found, Peer, Refusal, Upstream, Wan};
use basis_api::node::{PeerState, UpstreamState};
use basis_net::{BridgeSnapshot, PeerSnapshot};

/// A peer as the admin commands show it.
pub fn peer(p: PeerSnapshot) -> Peer {
    Peer {
        node_id: p.node_id,
        name: p.name,
        addresses: p.addresses,
        found: p.found.into_iter().map(found).collect(),
        state: peer_state(p.state),
        refusal: p.refusal.map(refusal),
        hint: p.hint,
        rtt_ms: p.rtt_ms,
        last_reconciled: p.last_reconciled,
        events_sent: p.events_sent,
        events_received: p.events_received,
        invalid_received: p.invalid_received,
        score: p.score,
        last_error: p.last_error,
        throttled_secs: p.throttled_secs,
        bytes_received: p.bytes_received,
    }
}

/// A link's state in the API's words.
pub fn peer_state(s: basis_net::PeerState) -> PeerState {
    match s {
        basis_net::PeerState::Connecting => PeerState::Connecting,
        basis_net::PeerState::Connected => PeerState::Connected,
        basis_net::PeerState::Disconnected => PeerState::Disconnected,
        basis_net::PeerState::Refused => PeerState::Refused,
    }
}

fn found(f: basis_net::Found) -> Found {
    match f {
        basis_net::Found::Mdns => Found::Mdns,
        basis_net::Found::Static => Found::Static,
        basis_net::Found::Exchange => Found::Exchange,
        basis_net::Found::Inbound => Found::Inbound,
        basis_net::Found::Known => Found::Known,
    }
}

fn refusal(r: basis_net::Refusal) -> Refusal {
    match r {
        basis_net::Refusal::OtherFederation => Refusal::OtherFederation,
        basis_net::Refusal::NoFederationHere => Refusal::NoFederationHere,
        basis_net::Refusal::NoFederationThere => Refusal::NoFederationThere,
        basis_net::Refusal::NotAdmittedHere => Refusal::NotAdmittedHere,
        basis_net::Refusal::NotAdmittedThere => Refusal::NotAdmittedThere,
        basis_net::Refusal::Banned => Refusal::Banned,
        basis_net::Refusal::UnexpectedKey => Refusal::UnexpectedKey,
    }
}

/// An upstream link's state in the API's words.
pub fn upstream_state(s: basis_net::UpstreamState) -> UpstreamState {
    match s {
        basis_net::UpstreamState::WaitingForWan => UpstreamState::WaitingForWan,
        basis_net::UpstreamState::Linking => UpstreamState::Linking,
        basis_net::UpstreamState::Linked => UpstreamState::Linked,
        basis_net::UpstreamState::Unreachable => UpstreamState::Unreachable,
        basis_net::UpstreamState::Refused => UpstreamState::Refused,
    }
}

/// The bridge as `basis status` shows it.
pub fn bridge(b: BridgeSnapshot) -> Bridge {
    Bridge {
        wan: Wan {
            up: b.wan.up,
            interface: b.wan.interface,
            detail: b.wan.detail,
            since: b.wan.since,
        },
        upstreams: b
            .upstreams
            .into_iter()
            .map(|u| Upstream {
                node_id: u.node_id,
                host: u.host,
                address: u.address,
                state: upstream_state(u.state),
                since: u.since,
                rtt_ms: u.rtt_ms,
                last_reconciled: u.last_reconciled,
                events_sent: u.events_sent,
                events_received: u.events_received,
                last_error: u.last_error,
            })
            .collect(),
        rooms: b
            .rooms
            .into_iter()
            .map(|r| BridgeRoom {
                room: r.room,
                uplink: r.uplink,
                downlink: r.downlink,
                priority: r.priority,
                budget_bytes_per_hour: r.budget_bytes_per_hour,
                budget_used_bytes: r.budget_used_bytes,
                budget_exhausted: r.budget_exhausted,
                budget_frees_in_secs: r.budget_frees_in_secs,
                backlog_events: r.backlog_events,
                backlog_bytes: r.backlog_bytes,
                backlog_exact: r.backlog_exact,
                downlink_backlog_events: r.downlink_backlog_events,
                sent_events: r.sent_events,
                sent_bytes: r.sent_bytes,
                received_events: r.received_events,
                received_bytes: r.received_bytes,
                last_synced: r.last_synced,
                files_waiting: r.files_waiting,
                file_bytes_sent: r.file_bytes_sent,
                file_bytes_received: r.file_bytes_received,
            })
            .collect(),
    }
}
