//! The client API on one node over loopback: sign-in and its refusals, bad input of every
//! kind answered with JSON errors (never a 5xx), room rules, sync and the live stream.

use crate::api_client;
use crate::common;

use std::time::Duration;

use api_client::{Api, create, member, rt, text};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use basis_core::{MembershipAction, RoomId, UserKey};
use common::Node;
use futures_util::StreamExt;
use serde_json::{Value, json};

#[test]
fn sign_in_refusals_are_json_errors() {
    let mut node = Node::new();
    node.start();
    rt().block_on(async {
        let api = Api::new(&node);
        let (alice, bob) = (UserKey::from_secret([1; 32]), UserKey::from_secret([2; 32]));
        // No token, a made-up token.
        api.get("/v1/rooms", None).await.refused(401, "no_token");
        api.get("/v1/rooms", Some("00ff"))
            .await
            .refused(401, "bad_token");
        // A replayed challenge answer.
        let (c, node_id) = api.challenge(&alice).await;
        let answer = Api::answer(&alice, &c, &node_id);
        assert_eq!(
            api.post("/v1/auth/session", None, &answer).await.status,
            200
        );
        api.post("/v1/auth/session", None, &answer)
            .await
            .refused(401, "unknown_challenge");
        // Bob signs a challenge issued for Alice with his own key, and one as Alice.
        let (c, node_id) = api.challenge(&alice).await;
        let mut forged = Api::answer(&bob, &c, &node_id);
        api.post("/v1/auth/session", None, &forged)
            .await
            .refused(401, "wrong_user");
        let (c, node_id) = api.challenge(&alice).await;
        forged = Api::answer(&bob, &c, &node_id);
        forged["user"] = json!(alice.id().to_string());
        api.post("/v1/auth/session", None, &forged)
            .await
            .refused(401, "bad_signature");

        // Alice's token cannot post Bob's event, and Bob cannot read Alice's room.
        let (ta, tb) = (api.sign_in(&alice).await, api.sign_in(&bob).await);
        let room_event = create(&alice, false);
        let room = RoomId::from(room_event.id());
        assert_eq!(api.post_event(&ta, &room_event).await.status, 201);
        api.post_event(&ta, &create(&bob, false))
            .await
            .refused(403, "wrong_author");
        api.get(&format!("/v1/rooms/{room}/events"), Some(&tb))
            .await
            .refused(404, "unknown_room");
        // Bob's token in Alice's room: writing is refused by the room's rules.
        api.post_event(&tb, &text(&bob, room, 5, "let me in"))
            .await
            .refused(403, "not_member");
        // Signing out revokes the token at once.
        let r = api
            .send(
                api.http
                    .delete(format!("{}/v1/auth/session", api.base))
                    .bearer_auth(&tb),
            )
            .await;
        assert_eq!(r.status, 204);
        api.get("/v1/rooms", Some(&tb))
            .await
            .refused(401, "bad_token");
    });
    node.stop();
}

#[test]
fn an_expired_token_is_refused() {
    let mut node = Node::with_config_extra(
        "[api]\nlisten = \"127.0.0.1:0\"\nsession_secs = 1\nrate_per_sec = 1000\n",
    );
    node.start();
    rt().block_on(async {
        let api = Api::new(&node);
        let alice = UserKey::from_secret([1; 32]);
        let token = api.sign_in(&alice).await;
        assert_eq!(api.get("/v1/rooms", Some(&token)).await.status, 200);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        api.get("/v1/rooms", Some(&token))
            .await
            .refused(401, "expired_token");
    });
    node.stop();
}

#[test]
fn bad_input_gets_json_errors_never_a_server_error() {
    let mut node = Node::new();
    node.start();
    rt().block_on(async {
        let api = Api::new(&node);
        let alice = UserKey::from_secret([1; 32]);
        let token = api.sign_in(&alice).await;
        let url = |p: &str| format!("{}{p}", api.base);
        let huge = json!({"event": "A".repeat(400 * 1024)});
        api.post("/v1/events", Some(&token), &huge)
            .await
            .refused(413, "too_large");
        let r = api
            .send(
                api.http
                    .post(url("/v1/events"))
                    .bearer_auth(&token)
                    .body("{\"event\":"),
            )
            .await;
        r.refused(415, "not_json");
        let r = api
            .send(
                api.http
                    .post(url("/v1/events"))
                    .bearer_auth(&token)
                    .header("content-type", "application/json")
                    .body("{\"event\":"),
            )
            .await;
        r.refused(400, "bad_request");
        api.post("/v1/events", Some(&token), &json!({"event": "%%%"}))
            .await
            .refused(400, "bad_base64");
        api.post(
            "/v1/events",
            Some(&token),
            &json!({"event": STANDARD.encode([1u8, 0xff, 0xff, 0xff])}),
        )
        .await
        .refused(400, "malformed");
        // A forged signature.
        let mut bytes = text(&alice, RoomId([9; 32]), 1, "x").to_bytes();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        api.post(
            "/v1/events",
            Some(&token),
            &json!({"event": STANDARD.encode(&bytes)}),
        )
        .await
        .refused(400, "bad_signature");
        api.get("/v1/rooms/xyz/events", Some(&token))
            .await
            .refused(400, "bad_id");
        api.get(
            &format!("/v1/rooms/{}/events?limit=0", RoomId([1; 32])),
            Some(&token),
        )
        .await
        .refused(400, "bad_limit");
        api.get(
            &format!("/v1/rooms/{}/events?before=nope", RoomId([1; 32])),
            Some(&token),
        )
        .await
        .refused(400, "bad_cursor");
        api.get("/v1/sync?since=-1", Some(&token))
            .await
            .refused(400, "bad_query");
        api.get("/v1/nothing-here", None)
            .await
            .refused(404, "no_such_path");
        let r = api.send(api.http.put(url("/v1/status"))).await;
        r.refused(405, "method_not_allowed");
        let r = api.get("/v1/stream", Some(&token)).await;
        r.refused(400, "not_websocket");
    });
    // The node is still well after all of it.
    assert!(node.is_running());
    node.stop();
}

#[test]
fn a_hammering_client_is_rate_limited() {
    let mut node = Node::with_config_extra(
        "[api]\nlisten = \"127.0.0.1:0\"\nrate_per_sec = 5\nrate_burst = 10\n",
    );
    node.start();
    rt().block_on(async {
        let api = Api::new(&node);
        let mut limited = 0;
        for _ in 0..50 {
            let r = api.get("/v1/status", None).await;
            if r.status == 429 {
                r.refused(429, "rate_limited");
                limited += 1;
            } else {
                assert_eq!(r.status, 200);
            }
        }
        assert!(limited >= 30, "only {limited} of 50 requests were limited");
    });
    node.stop();
}

#[test]
fn room_rules_sync_and_the_live_stream() {
    let mut node = Node::new();
    node.start();
    rt().block_on(async {
        let api = Api::new(&node);
        let (alice, bob, carol) = (
            UserKey::from_secret([1; 32]),
            UserKey::from_secret([2; 32]),
            UserKey::from_secret([3; 32]),
        );
        let (ta, tb, tc) = (
            api.sign_in(&alice).await,
            api.sign_in(&bob).await,
            api.sign_in(&carol).await,
        );
        let c = create(&alice, true);
        let room = RoomId::from(c.id());
        assert_eq!(api.post_event(&ta, &c).await.status, 201);
        // Posting the same event again is fine and says so.
        let again = api.post_event(&ta, &c).await;
        assert_eq!(
            (again.status, again.body["new"].as_bool()),
            (200, Some(false))
        );
        // Carol cannot join uninvited; plaintext is refused in an encrypted room.
        api.post_event(
            &tc,
            &member(&carol, room, 1, MembershipAction::Join, &carol),
        )
        .await
        .refused(403, "not_invited");
        api.post_event(&ta, &text(&alice, room, 2, "plain"))
            .await
            .refused(400, "must_encrypt");

        // Bob follows the stream before he is invited: the invite reaches him live.
        let ws_url = format!(
            "{}/v1/stream?access_token={tb}",
            api.base.replace("http://", "ws://")
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
        let invite = member(&alice, room, 3, MembershipAction::Invite, &bob);
        assert_eq!(api.post_event(&ta, &invite).await.status, 201);
        let pushed = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("the invite is pushed within 10 s")
            .unwrap()
            .unwrap();
        let pushed: Value = serde_json::from_str(pushed.to_text().unwrap()).unwrap();
        assert_eq!(pushed["type"], "event");
        assert_eq!(pushed["event"]["id"], invite.id().to_string());

        // Sync shows Bob the room's events; Carol, never invited, sees none of them.
        let r = api.get("/v1/sync?since=0", Some(&tb)).await;
        let ids: Vec<&str> = r.body["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap())
            .collect();
        assert!(ids.contains(&c.id().to_string().as_str()));
        assert!(ids.contains(&invite.id().to_string().as_str()));
        let r = api.get("/v1/sync?since=0", Some(&tc)).await;
        assert_eq!(r.body["events"].as_array().unwrap().len(), 0, "{}", r.body);
        // A long-poll returns as soon as something new arrives.
        let next = api.get("/v1/sync?since=0", Some(&tb)).await.body["next"]
            .as_u64()
            .unwrap();
        let join = member(&bob, room, 4, MembershipAction::Join, &bob);
        let path = format!("/v1/sync?since={next}&wait_ms=20000");
        let waiting = api.get(&path, Some(&tb));
        let (r, posted) = tokio::join!(waiting, async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            api.post_event(&tb, &join).await
        });
        assert_eq!(posted.status, 201);
        assert_eq!(r.body["events"][0]["id"], join.id().to_string());
        // Bob is a member now: the room lists him joined.
        let r = api.get(&format!("/v1/rooms/{room}"), Some(&tb)).await;
        assert_eq!(r.body["standing"], "joined");
    });
    node.stop();
}

#[test]
fn only_the_author_may_edit_or_delete_a_message_and_only_a_message() {
    use api_client::sign;
    use basis_core::{Body, MessageBody};
    let mut node = Node::new();
    node.start();
    rt().block_on(async {
        let api = Api::new(&node);
        let (alice, bob) = (UserKey::from_secret([1; 32]), UserKey::from_secret([2; 32]));
        let (ta, tb) = (api.sign_in(&alice).await, api.sign_in(&bob).await);
        let room_event = create(&alice, false);
        let room = RoomId::from(room_event.id());
        assert_eq!(api.post_event(&ta, &room_event).await.status, 201);
        let invite = member(&alice, room, 1, MembershipAction::Invite, &bob);
        assert_eq!(api.post_event(&ta, &invite).await.status, 201);
        let join = member(&bob, room, 2, MembershipAction::Join, &bob);
        assert_eq!(api.post_event(&tb, &join).await.status, 201);
        let hello = text(&alice, room, 3, "hello");
        assert_eq!(api.post_event(&ta, &hello).await.status, 201);
        let change = |key: &UserKey, t, body| sign(key, Some(room), t, Body::Message(body));
        // Bob edits and deletes Alice's message: refused, with the reason.
        let forged = change(
            &bob,
            4,
            MessageBody::Edit {
                target: hello.id(),
                text: "forged".into(),
            },
        );
        api.post_event(&tb, &forged)
            .await
            .refused(403, "not_your_message");
        let delete = change(&bob, 5, MessageBody::Delete { target: hello.id() });
        api.post_event(&tb, &delete)
            .await
            .refused(403, "not_your_message");
        // Deleting the room's creation "succeeded" before: it is not a message.
        let delete_create = change(
            &alice,
            6,
            MessageBody::Delete {
                target: room_event.id(),
            },
        );
        api.post_event(&ta, &delete_create)
            .await
            .refused(403, "not_a_message");
        let unknown = change(
            &alice,
            7,
            MessageBody::Delete {
                target: basis_core::EventId([7; 32]),
            },
        );
        api.post_event(&ta, &unknown)
            .await
            .refused(404, "unknown_target");
        // The author's own edit and delete are taken.
        let edit = change(
            &alice,
            8,
            MessageBody::Edit {
                target: hello.id(),
                text: "hello all".into(),
            },
        );
        assert_eq!(api.post_event(&ta, &edit).await.status, 201);
        let own_delete = change(&alice, 9, MessageBody::Delete { target: hello.id() });
        assert_eq!(api.post_event(&ta, &own_delete).await.status, 201);
    });
    node.stop();
}
