//! Sign-in by challenge and the sessions it opens.
//!
//! A client asks for a challenge for its user id, signs it with its user key
//! ([`basis_core::auth::challenge_message`]) and trades the signature for a session token.
//! A challenge works once and for [`CHALLENGE_TTL`]; a token works until it expires or is
//! revoked. Only a hash of each token is kept, and tokens never reach the log.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use basis_core::auth::challenge_message;
use basis_core::keys::verify;
use basis_core::{NodeId, UserId};
use sha2::{Digest, Sha256};

use super::error::ApiError;

/// How long a challenge may be answered.
pub const CHALLENGE_TTL: Duration = Duration::from_secs(60);
/// Most challenges waiting for an answer at once.
const MAX_CHALLENGES: usize = 10_000;
/// Most open sessions at once.
const MAX_SESSIONS: usize = 100_000;

struct Session {
    user: UserId,
    expires: Instant,
}

#[derive(Default)]
struct State {
    challenges: HashMap<[u8; 32], (UserId, Instant)>,
    sessions: HashMap<[u8; 32], Session>,
}

/// Challenges and sessions of the client API.
pub struct Auth {
    node: NodeId,
    session_ttl: Duration,
    state: Mutex<State>,
}

fn random32() -> Result<[u8; 32], ApiError> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "no_randomness",
            format!("the node cannot get random bytes: {e}"),
        )
    })?;
    Ok(b)
}

fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Parses 2×N hex characters into N bytes, naming the field on failure.
pub fn hex_field<const N: usize>(field: &str, text: &str) -> Result<[u8; N], ApiError> {
    let bytes = hex::decode(text).map_err(|_| {
        ApiError::bad_request(
            "bad_hex",
            format!("{field}: expected {} hex characters", N * 2),
        )
    })?;
    <[u8; N]>::try_from(bytes.as_slice()).map_err(|_| {
        ApiError::bad_request(
            "bad_hex",
            format!("{field}: expected {} hex characters", N * 2),
        )
    })
}

impl Auth {
    /// Sign-in for the node `node`; sessions last `session_ttl`.
    pub fn new(node: NodeId, session_ttl: Duration) -> Auth {
        Auth {
            node,
            session_ttl,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A fresh challenge for `user`.
    pub fn challenge(&self, user: UserId) -> Result<[u8; 32], ApiError> {
        let challenge = random32()?;
        let now = Instant::now();
        let mut s = self.state();
        if s.challenges.len() >= MAX_CHALLENGES {
            s.challenges
                .retain(|_, (_, at)| now.duration_since(*at) < CHALLENGE_TTL);
            if s.challenges.len() >= MAX_CHALLENGES {
                return Err(ApiError::too_many(
                    "too_many_challenges",
                    "too many sign-ins are in progress; try again in a minute",
                ));
            }
        }
        s.challenges.insert(challenge, (user, now));
        Ok(challenge)
    }

    /// Trades a signed challenge for a session token. Each challenge works once.
    pub fn sign_in(
        &self,
        user: UserId,
        challenge: [u8; 32],
        signature: [u8; 64],
    ) -> Result<(String, Duration), ApiError> {
        let mut s = self.state();
        let Some((for_user, at)) = s.challenges.remove(&challenge) else {
            return Err(ApiError::unauthorized(
                "unknown_challenge",
                "this challenge was never issued, was already used or has expired; ask for a new one",
            ));
        };
        if at.elapsed() >= CHALLENGE_TTL {
            return Err(ApiError::unauthorized(
                "expired_challenge",
                "the challenge expired; ask for a new one",
            ));
        }
        if for_user != user {
            return Err(ApiError::unauthorized(
                "wrong_user",
                "the challenge was issued for another user",
            ));
        }
        if !verify(
            user.as_bytes(),
            &challenge_message(&self.node, &challenge),
            &signature,
        ) {
            return Err(ApiError::unauthorized(
                "bad_signature",
                "the signature does not verify with this user's key",
            ));
        }
        let now = Instant::now();
        if s.sessions.len() >= MAX_SESSIONS {
            s.sessions.retain(|_, v| v.expires > now);
            if s.sessions.len() >= MAX_SESSIONS {
                return Err(ApiError::too_many(
                    "too_many_sessions",
                    "the node has too many open sessions",
                ));
            }
        }
        let token = hex::encode(random32()?);
        s.sessions.insert(
            token_hash(&token),
            Session {
                user,
                expires: now + self.session_ttl,
            },
        );
        Ok((token, self.session_ttl))
    }

    /// The user a token belongs to.
    pub fn user_of(&self, token: &str) -> Result<UserId, ApiError> {
        let key = token_hash(token);
        let mut s = self.state();
        match s.sessions.get(&key) {
            None => Err(ApiError::unauthorized(
                "bad_token",
                "the session token is not known (revoked, from before a node restart, or mistyped); sign in again",
            )),
            Some(session) if session.expires <= Instant::now() => {
                s.sessions.remove(&key);
                Err(ApiError::unauthorized(
                    "expired_token",
                    "the session expired; sign in again",
                ))
            }
            Some(session) => Ok(session.user),
        }
    }

    /// Ends a session. Returns false when the token was not open.
    pub fn revoke(&self, token: &str) -> bool {
        self.state().sessions.remove(&token_hash(token)).is_some()
    }
}

/// The signed-in user of a request, from `Authorization: Bearer <token>` (or, for
/// WebSockets, which browsers open without headers, `?access_token=<token>`).
pub struct SignedIn {
    /// The user.
    pub user: UserId,
    /// The token used, to revoke it.
    pub token: String,
}

fn bearer(parts: &Parts) -> Option<String> {
    if let Some(value) = parts.headers.get(header::AUTHORIZATION) {
        let text = value.to_str().ok()?;
        let (scheme, token) = text.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_string());
    }
    parts.uri.query().and_then(|q| {
        q.split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == "access_token")
            .map(|(_, v)| v.to_string())
    })
}

impl FromRequestParts<std::sync::Arc<super::ApiState>> for SignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &std::sync::Arc<super::ApiState>,
    ) -> Result<SignedIn, ApiError> {
        let token = bearer(parts).ok_or_else(|| {
            ApiError::unauthorized(
                "no_token",
                "sign in first: POST /v1/auth/challenge, then /v1/auth/session, then send Authorization: Bearer <token>",
            )
        })?;
        let user = state.auth.user_of(&token)?;
        Ok(SignedIn { user, token })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use basis_core::UserKey;

    fn signed(auth: &Auth, key: &UserKey, node: &NodeId) -> ([u8; 32], [u8; 64]) {
        let c = auth.challenge(key.id()).unwrap();
        (c, key.sign(&challenge_message(node, &c)))
    }

    #[test]
    fn a_signed_challenge_opens_a_session_once() {
        let node = NodeId([3; 32]);
        let auth = Auth::new(node, Duration::from_secs(60));
        let key = UserKey::from_secret([1; 32]);
        let (c, sig) = signed(&auth, &key, &node);
        let (token, _) = auth.sign_in(key.id(), c, sig).unwrap();
        assert_eq!(auth.user_of(&token).unwrap(), key.id());
        // Replaying the same answer fails: the challenge is spent.
        assert_eq!(
            auth.sign_in(key.id(), c, sig).unwrap_err().code,
            "unknown_challenge"
        );
        assert!(auth.revoke(&token));
        assert_eq!(auth.user_of(&token).unwrap_err().code, "bad_token");
    }

    #[test]
    fn wrong_key_wrong_user_and_other_node_are_refused() {
        let node = NodeId([3; 32]);
        let auth = Auth::new(node, Duration::from_secs(60));
        let (alice, mallory) = (UserKey::from_secret([1; 32]), UserKey::from_secret([2; 32]));
        let c = auth.challenge(alice.id()).unwrap();
        let forged = mallory.sign(&challenge_message(&node, &c));
        assert_eq!(
            auth.sign_in(alice.id(), c, forged).unwrap_err().code,
            "bad_signature"
        );
        let c = auth.challenge(alice.id()).unwrap();
        let sig = mallory.sign(&challenge_message(&node, &c));
        assert_eq!(
            auth.sign_in(mallory.id(), c, sig).unwrap_err().code,
            "wrong_user"
        );
        let c = auth.challenge(alice.id()).unwrap();
        let elsewhere = alice.sign(&challenge_message(&NodeId([4; 32]), &c));
        assert_eq!(
            auth.sign_in(alice.id(), c, elsewhere).unwrap_err().code,
            "bad_signature"
        );
    }

    #[test]
    fn sessions_expire() {
        let node = NodeId([3; 32]);
        let auth = Auth::new(node, Duration::from_millis(1));
        let key = UserKey::from_secret([1; 32]);
        let (c, sig) = signed(&auth, &key, &node);
        let (token, _) = auth.sign_in(key.id(), c, sig).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(auth.user_of(&token).unwrap_err().code, "expired_token");
    }
}
