//! A small client of the node's API for the integration tests: sign-in, posting signed
//! events, JSON replies with their status.
// Each test crate that includes this file uses a different part of it.
#![allow(dead_code)]

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use basis_core::auth::challenge_message;
use basis_core::{
    Body, Event, EventContent, History, MembershipAction, MessageBody, NodeId, PROTOCOL_VERSION,
    RoomCreate, RoomId, Timestamp, UserKey,
};
use serde_json::{Value, json};

use crate::common::Node;

/// A client of one node's API.
pub struct Api {
    /// Base URL.
    pub base: String,
    /// The HTTP client.
    pub http: reqwest::Client,
}

/// A reply: status and JSON body (Null when the body is not JSON).
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// JSON body (Null when not JSON).
    pub body: Value,
    /// Whether the reply was JSON.
    pub json: bool,
}

impl Reply {
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }

    /// Asserts a JSON error with this status and code, and a human message.
    pub fn refused(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "status of {}", self.body);
        assert!(self.json, "an error must be JSON: {}", self.body);
        assert_eq!(self.code(), code, "{}", self.body);
        assert!(
            self.body["message"].as_str().is_some_and(|m| m.len() > 10),
            "an error explains itself: {}",
            self.body
        );
    }
}

impl Api {
    pub fn new(node: &Node) -> Api {
        Api {
            base: node.api_url(),
            http: reqwest::Client::new(),
        }
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        let r = req.send().await.expect("the node answers");
        let status = r.status().as_u16();
        let is_json = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        let bytes = r.bytes().await.expect("body");
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            body,
            json: is_json,
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        self.send(req).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Reply {
        let mut req = self.http.post(format!("{}{path}", self.base)).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        self.send(req).await
    }

    pub async fn challenge(&self, user: &UserKey) -> (String, NodeId) {
        let r = self
            .post(
                "/v1/auth/challenge",
                None,
                &json!({"user": user.id().to_string()}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        (
            r.body["challenge"].as_str().unwrap().to_string(),
            r.body["node_id"].as_str().unwrap().parse().unwrap(),
        )
    }

    pub fn answer(user: &UserKey, challenge: &str, node: &NodeId) -> Value {
        let c: [u8; 32] = hex::decode(challenge).unwrap().try_into().unwrap();
        let sig = user.sign(&challenge_message(node, &c));
        json!({"user": user.id().to_string(), "challenge": challenge, "signature": hex::encode(sig)})
    }

    pub async fn sign_in(&self, user: &UserKey) -> String {
        let (c, node) = self.challenge(user).await;
        let r = self
            .post("/v1/auth/session", None, &Api::answer(user, &c, &node))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body["token"].as_str().unwrap().to_string()
    }

    pub async fn post_event(&self, token: &str, event: &Event) -> Reply {
        let path = match &event.content.body {
            Body::Create(_) => "/v1/rooms".to_string(),
            Body::Membership { .. } => format!("/v1/rooms/{}/members", event.room_id()),
            _ => "/v1/events".to_string(),
        };
        self.post(
            &path,
            Some(token),
            &json!({"event": STANDARD.encode(event.to_bytes())}),
        )
        .await
    }
}

pub fn sign(key: &UserKey, room: Option<RoomId>, t: u64, body: Body) -> Event {
    EventContent {
        version: PROTOCOL_VERSION,
        room,
        author: key.id(),
        parents: vec![],
        time: Timestamp::new(1_800_000_000_000 + t, 0),
        body,
    }
    .sign(key)
}

pub fn create(key: &UserKey, encrypted: bool) -> Event {
    sign(
        key,
        None,
        0,
        Body::Create(RoomCreate {
            name: "ops".into(),
            encrypted,
            history: History::SinceJoin,
        }),
    )
}

pub fn text(key: &UserKey, room: RoomId, t: u64, words: &str) -> Event {
    sign(
        key,
        Some(room),
        t,
        Body::Message(MessageBody::Text { text: words.into() }),
    )
}

pub fn member(
    key: &UserKey,
    room: RoomId,
    t: u64,
    action: MembershipAction,
    target: &UserKey,
) -> Event {
    sign(
        key,
        Some(room),
        t,
        Body::Membership {
            action,
            target: target.id(),
        },
    )
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}
