//! The `basis` crate as a library, in one process: a node's client API served on loopback and
//! the chat client's `NodeClient` signing in, making a room and reading it back, with no
//! `basis` process started. What the server sends and what the client reads are the same
//! `basis_api` types, so a mismatch between them fails here to compile or to decode.

use std::sync::Arc;

use basis::api;
use basis::client::compose::Composer;
use basis::client::node_client::NodeClient;
use basis::node::{Node, wall_millis};
use basis_api::rooms::{History, Standing};
use basis_core::{Body, NodeKey, RoomCreate};
use basis_e2ee::UserSecrets;
use basis_store::{Store, StoreOptions};
use tokio_util::sync::CancellationToken;

#[test]
fn the_chat_client_talks_to_the_api_in_one_process() {
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = Store::open(&dir.path().join("basis.db"), &StoreOptions::default())
        .expect("the store opens");
    let node_id = NodeKey::generate().expect("a node key").id();
    let node = Arc::new(Node::new(
        node_id,
        "in-process".into(),
        dir.path().to_path_buf(),
        Vec::new(),
        &store,
        None,
    ));
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let base = format!("http://{}", listener.local_addr().expect("its address"));
        let stop = CancellationToken::new();
        let server = tokio::spawn(api::serve(
            listener,
            node.clone(),
            basis_config::ApiConfig::default(),
            stop.clone(),
        ));

        let ana = UserSecrets::generate(wall_millis()).expect("a user");
        let client = NodeClient::sign_in(&base, &ana).await.expect("sign-in");
        let status = client.status().await.expect("the node's status");
        assert_eq!(status.node_id, node_id.to_string());
        assert!(client.rooms().await.expect("rooms").is_empty());

        let mut composer = Composer::new(&ana, status.time);
        let create = composer.sign(
            None,
            Vec::new(),
            Body::Create(RoomCreate {
                name: "ops".into(),
                encrypted: true,
                history: basis_core::History::SinceJoin,
            }),
        );
        let posted = client.post_event(&create).await.expect("the room is made");
        assert!(posted.new);

        let rooms = client.rooms().await.expect("rooms");
        assert_eq!(rooms.len(), 1, "{rooms:?}");
        let room = &rooms[0];
        assert_eq!(room.room, posted.room);
        assert_eq!(room.name, "ops");
        assert!(room.encrypted);
        assert_eq!(room.history, History::SinceJoin);
        assert_eq!(room.standing, Standing::Joined);
        assert_eq!(room.creator, ana.user_id().to_string());

        stop.cancel();
        server.await.expect("the server stops");
    });
    store.close().expect("the store closes");
}
