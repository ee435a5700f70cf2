//! schemathesis (PyPI) against the OpenAPI document the node serves: generated requests of
//! every operation, signed in, must never get a server error or a reply that breaks the
//! document. Bounded in time; `tests/run` installs schemathesis.

use crate::api_client;
use crate::common;

use std::process::Command;
use std::time::Duration;

use api_client::{Api, create, rt, sign};
use basis_core::{Body, Profile, UserKey, profile_room};
use common::{Node, describe, run_with_timeout};

/// Generated examples per operation and phase: enough to walk every parameter and error
/// path while keeping the run to a minute or two.
const MAX_EXAMPLES: &str = "40";

/// Signs in, creates a room and publishes a profile; returns the token and the room id.
fn prepare(node: &Node, key: &UserKey) -> (String, String) {
    rt().block_on(async {
        let api = Api::new(node);
        let token = api.sign_in(key).await;
        let room = create(key, true);
        let profile = sign(
            key,
            Some(profile_room(&key.id())),
            1,
            Body::Profile(Profile {
                name: "Schema".into(),
                agreement_key: [9; 32],
            }),
        );
        for event in [&room, &profile] {
            assert_eq!(api.post_event(&token, event).await.status, 201);
        }
        (token, room.id().to_string())
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
    let (token, room) = prepare(&node, &user);
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
