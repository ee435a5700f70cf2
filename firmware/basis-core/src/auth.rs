//! Client sign-in: what a user's key signs to prove itself to a node.
//!
//! The node hands out a fresh random challenge; the client signs
//! `basis/auth/v1\n` ‖ node id (32 bytes) ‖ challenge (32 bytes) with its user key. Naming the
//! node stops a signature made for one node from opening a session on another; the context
//! prefix keeps it from ever being mistaken for an event signature.

use crate::ids::NodeId;

/// Prefix of every sign-in message.
pub const AUTH_CONTEXT: &[u8] = b"basis/auth/v1\n";

/// The message a client signs to answer `challenge` from `node`.
pub fn challenge_message(node: &NodeId, challenge: &[u8; 32]) -> Vec<u8> {
    let mut m = Vec::with_capacity(AUTH_CONTEXT.len() + 64);
    m.extend_from_slice(AUTH_CONTEXT);
    m.extend_from_slice(node.as_bytes());
    m.extend_from_slice(challenge);
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{UserKey, verify};

    #[test]
    fn a_signature_is_bound_to_node_and_challenge() {
        let user = UserKey::from_secret([7; 32]);
        let (n1, n2) = (NodeId([1; 32]), NodeId([2; 32]));
        let sig = user.sign(&challenge_message(&n1, &[9; 32]));
        let public = user.id();
        assert!(verify(
            public.as_bytes(),
            &challenge_message(&n1, &[9; 32]),
            &sig
        ));
        assert!(!verify(
            public.as_bytes(),
            &challenge_message(&n2, &[9; 32]),
            &sig
        ));
        assert!(!verify(
            public.as_bytes(),
            &challenge_message(&n1, &[8; 32]),
            &sig
        ));
    }
}
