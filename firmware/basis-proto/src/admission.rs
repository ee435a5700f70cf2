//! Admission: proving membership of a federation without revealing its secret.
//!
//! The federation key is derived from the shared secret with HKDF-SHA256. Each side of a link
//! sends an HMAC-SHA256, under that key, over a value exported from this very TLS session,
//! its role and its node id. The proof cannot be replayed on another connection (the exported
//! value differs), reflected (the role differs) or used to learn the secret. The mDNS
//! announcement carries only a tag derived from the key, so nodes can skip foreign
//! federations without dialling them.

use basis_core::NodeId;
use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// Label of the TLS exporter value the proofs are bound to.
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-basis-admission-v1";

/// Which end of the connection a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The node that dialled.
    Dialer,
    /// The node that accepted.
    Acceptor,
}

impl Role {
    fn byte(self) -> u8 {
        match self {
            Role::Dialer => b'd',
            Role::Acceptor => b'a',
        }
    }

    /// The other end's role.
    pub fn peer(self) -> Role {
        match self {
            Role::Dialer => Role::Acceptor,
            Role::Acceptor => Role::Dialer,
        }
    }
}

/// A proof of membership: 32 bytes of HMAC-SHA256.
pub type Proof = [u8; 32];

/// The key of a federation, derived from its shared secret. Never logged.
#[derive(Clone)]
pub struct FederationKey([u8; 32]);

impl std::fmt::Debug for FederationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FederationKey(tag {})", self.tag())
    }
}

impl FederationKey {
    /// Derives the key from the secret the nodes share (a passphrase).
    pub fn from_secret(secret: &[u8]) -> FederationKey {
        let hk = Hkdf::<Sha256>::new(Some(b"basis/federation/v1"), secret);
        let mut key = [0u8; 32];
        // 32 bytes is far below HKDF-SHA256's output limit, so expand cannot fail.
        let _ = hk.expand(b"federation key", &mut key);
        FederationKey(key)
    }

    /// The public tag of the federation (16 hex characters), announced over mDNS.
    pub fn tag(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"basis/federation-tag/v1");
        h.update(self.0);
        hex::encode(&h.finalize()[..8])
    }

    fn mac(&self, exporter: &[u8; 32], role: Role, node: &NodeId) -> Hmac<Sha256> {
        // Any key length is valid for HMAC.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(b"basis/admission/v1");
        mac.update(exporter);
        mac.update(&[role.byte()]);
        mac.update(node.as_bytes());
        mac
    }

    /// The proof a node in `role` with id `node` sends on the session with this exporter value.
    pub fn prove(&self, exporter: &[u8; 32], role: Role, node: &NodeId) -> Proof {
        self.mac(exporter, role, node)
            .finalize()
            .into_bytes()
            .into()
    }

    /// Checks a peer's proof (in constant time).
    pub fn verify(&self, exporter: &[u8; 32], role: Role, node: &NodeId, proof: &Proof) -> bool {
        self.mac(exporter, role, node).verify_slice(proof).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXP: [u8; 32] = [7; 32];

    #[test]
    fn same_secret_verifies_other_secret_does_not() {
        let a = FederationKey::from_secret(b"blue river 42");
        let b = FederationKey::from_secret(b"blue river 42");
        let c = FederationKey::from_secret(b"other");
        let node = NodeId([1; 32]);
        let proof = a.prove(&EXP, Role::Dialer, &node);
        assert!(b.verify(&EXP, Role::Dialer, &node, &proof));
        assert!(!c.verify(&EXP, Role::Dialer, &node, &proof));
        assert_eq!(a.tag(), b.tag());
        assert_ne!(a.tag(), c.tag());
        assert_eq!(a.tag().len(), 16);
    }

    #[test]
    fn proofs_do_not_replay_reflect_or_transfer() {
        let k = FederationKey::from_secret(b"s");
        let node = NodeId([1; 32]);
        let proof = k.prove(&EXP, Role::Dialer, &node);
        assert!(
            !k.verify(&[8; 32], Role::Dialer, &node, &proof),
            "other session"
        );
        assert!(!k.verify(&EXP, Role::Acceptor, &node, &proof), "reflected");
        assert!(
            !k.verify(&EXP, Role::Dialer, &NodeId([2; 32]), &proof),
            "other node"
        );
    }

    #[test]
    fn debug_shows_only_the_tag() {
        let k = FederationKey::from_secret(b"s");
        let shown = format!("{k:?}");
        assert!(shown.contains(&k.tag()));
        assert!(!shown.contains(&hex::encode(k.0)));
    }
}
