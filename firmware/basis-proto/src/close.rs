//! The QUIC application close codes of a federation link: what a peer reads when a node
//! closes a connection. They are wire format (listed in `docs/FEDERATION.md`): never renumber.

/// Why a node closed a federation connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseCode {
    /// The link ended; the reason text says why (the `Bye` before it said so too).
    Ended,
    /// The connection cannot carry a link: no node key, no keying material, no link stream.
    Unusable,
    /// Another link between the same two nodes was kept (see [`crate::duplicate`]).
    Duplicate,
    /// The peer is refused for a while for misbehaving.
    Banned,
    /// This node has as many links as it takes (`federation.max_peers`).
    TooManyPeers,
    /// The node's key is not the one the dialler expected for that address.
    UnexpectedKey,
    /// Admission failed: the peer did not prove the federation's secret and is not on the
    /// allow-list, or speaks another protocol version.
    NotAdmitted,
    /// The node is shutting down.
    Shutdown,
}

impl CloseCode {
    /// Every code, in wire order.
    pub const ALL: [CloseCode; 8] = [
        CloseCode::Ended,
        CloseCode::Unusable,
        CloseCode::Duplicate,
        CloseCode::Banned,
        CloseCode::TooManyPeers,
        CloseCode::UnexpectedKey,
        CloseCode::NotAdmitted,
        CloseCode::Shutdown,
    ];

    /// The number on the wire.
    pub fn code(self) -> u32 {
        match self {
            CloseCode::Ended => 0,
            CloseCode::Unusable => 1,
            CloseCode::Duplicate => 2,
            CloseCode::Banned => 3,
            CloseCode::TooManyPeers => 4,
            CloseCode::UnexpectedKey => 5,
            CloseCode::NotAdmitted => 6,
            CloseCode::Shutdown => 7,
        }
    }

    /// The code a number stands for (`None` for a number this version does not know).
    pub fn from_code(code: u64) -> Option<CloseCode> {
        CloseCode::ALL
            .into_iter()
            .find(|c| u64::from(c.code()) == code)
    }

    /// Whether a connection closed with this code refused the node that reads it, so that
    /// dialling it again soon is pointless.
    pub fn is_refusal(self) -> bool {
        matches!(
            self,
            CloseCode::Banned | CloseCode::UnexpectedKey | CloseCode::NotAdmitted
        )
    }

    /// What the code means, in a few words for logs and `basis peers`.
    pub fn meaning(self) -> &'static str {
        match self {
            CloseCode::Ended => "link ended",
            CloseCode::Unusable => "not a usable Basis link",
            CloseCode::Duplicate => "duplicate link",
            CloseCode::Banned => "banned for misbehaving",
            CloseCode::TooManyPeers => "too many peers",
            CloseCode::UnexpectedKey => "unexpected node key",
            CloseCode::NotAdmitted => "not admitted",
            CloseCode::Shutdown => "node shutting down",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_distinct() {
        for (i, c) in CloseCode::ALL.into_iter().enumerate() {
            assert_eq!(c.code() as usize, i);
            assert_eq!(CloseCode::from_code(u64::from(c.code())), Some(c));
        }
        assert_eq!(CloseCode::from_code(8), None);
        assert_eq!(CloseCode::from_code(u64::MAX), None);
    }
}
