//! schemathesis (PyPI) against the OpenAPI document the node serves: generated requests of
//! every operation, signed in, must never get a server error or a reply that breaks the
//! document. Bounded in time; `tests/run` installs schemathesis.

#[path = "common/mod.rs"]
mod common;

use std::process::Command;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use basis_core::auth::challenge_message;
use basis_core::{
    Body, EventContent, History, PROTOCOL_VERSION, Profile, RoomCreate, Timestamp, UserKey,
    profile_room,
};
use common::{Node, describe, run_with_timeout};
use serde_json::{Value, json};

/// Generated examples per operation and phase: enough to walk every parameter and error
/// path while keeping the run to a minute or two.
const MAX_EXAMPLES: &str = "40";

/// Signs in, creates a room and publishes a profile; returns the token and the room id.
fn prepare(base: &str, key: &UserKey) -> (String, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let c: Value = http
            .post(format!("{base}/v1/auth/challenge"))
            .json(&json!({"user": key.id().to_string()}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let challenge: [u8; 32] = hex::decode(c["challenge"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        let node = c["node_id"].as_str().unwrap().parse().unwrap();
        let sig = key.sign(&challenge_message(&node, &challenge));
        let s: Value = http
            .post(format!("{base}/v1/auth/session"))
            .json(&json!({
                "user": key.id().to_string(),
                "challenge": c["challenge"],
                "signature": hex::encode(sig),
            }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = s["token"].as_str().unwrap().to_string();
        let sign = |room, body| {
            EventContent {
                version: PROTOCOL_VERSION,
                room,
                author: key.id(),
                parents: vec![],
                time: Timestamp::new(1_800_000_000_000, 0),
                body,
            }
            .sign(key)
        };
        let create = sign(
            None,
            Body::Create(RoomCreate {
                name: "schema".into(),
                encrypted: true,
                history: History::SinceJoin,
            }),
        );
        let profile = sign(
            Some(profile_room(&key.id())),
            Body::Profile(Profile {
                name: "Schema".into(),
                agreement_key: [9; 32],
            }),
        );
        for (path, event) in [("/v1/rooms", &create), ("/v1/events", &profile)] {
            let r = http
                .post(format!("{base}{path}"))
                .bearer_auth(&token)
                .json(&json!({"event": STANDARD.encode(event.to_bytes())}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 201, "{path}");
        }
        (token, create.id().to_string())
    })
}

#[test]
fn schemathesis_finds_no_server_error_and_no_reply_outside_the_document() {
    let available = Command::new("python3")
        .args(["-m", "schemathesis.cli", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !available {
        assert!(
            std::env::var_os("CI").is_none(),
            "schemathesis is missing in CI: tests/run installs it"
        );
        eprintln!("skipped: schemathesis is not installed (python3 -m pip install schemathesis)");
        return;
    }
    let mut node = Node::new();
    node.start();
    let base = node.api_url();
    let user = UserKey::from_secret([7; 32]);
    let (token, room) = prepare(&base, &user);
    let report = node.root().join("schemathesis.xml");
    let mut cmd = Command::new("python3");
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/api_schema.toml");
    cmd.args(["-m", "schemathesis.cli", "--config-file", config, "run"])
        .arg(format!("{base}/v1/openapi.json"))
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--max-examples", MAX_EXAMPLES])
        .args(["--phases", "examples,coverage,fuzzing"])
        // Signing out would end the session the run is using.
        .args(["--exclude-method", "DELETE"])
        .args(["--request-timeout", "40"])
        // Long-polls (`wait_ms` up to 30 s) take as long as they are asked to.
        .args(["--max-response-time", "35"])
        .args(["--seed", "7464"])
        .arg("--report-junit-path")
        .arg(&report)
        .arg("--no-color")
        .env("SCHEMATHESIS_HOOKS", "")
        .env("BASIS_TEST_ROOM", &room)
        .env("BASIS_TEST_USER", user.id().to_string())
        .current_dir(node.root());
    let out = run_with_timeout(cmd, Duration::from_secs(600));
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}");
    assert!(
        out.status.success(),
        "schemathesis found problems\n{}\n--- node log ---\n{}",
        describe(&out),
        node.log_text()
    );
    assert!(
        !node.log_text().contains("panicked"),
        "the node panicked:\n{}",
        node.log_text()
    );
    node.stop();
}
