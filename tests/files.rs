//! Files through one node's client API (loopback): a sealed file uploaded as a chunk list
//! and chunks, read back whole, by chunk and by range, and opened to the same SHA-256; a
//! truncated upload left resumable; bad chunks, an over-limit file and strangers refused;
//! and the `basis send --file`, `history` and `download` commands end to end, with a sender's
//! hostile file name saved as a safe one.

use crate::api_client;
use crate::common;

use std::fs;
use std::process::Output;
use std::time::Duration;

use api_client::{Api, Reply, create, rt, sign};
use basis_core::{BlobRef, ChunkList, FileDescriptor, MessageBody, RoomId, UserKey};
use basis_e2ee::file::{ChunkOpener, seal_reader};
use common::{Node, clean_command, describe, pseudo_random, run_with_timeout};
use sha2::{Digest, Sha256};

const CHUNK: u32 = 256 * 1024;

/// Seals `data` in memory: the descriptor (with the key), the list and the chunks.
pub(crate) fn seal(data: &[u8]) -> (FileDescriptor, ChunkList, Vec<Vec<u8>>) {
    let mut chunks = Vec::new();
    let sealed = seal_reader(data, data.len() as u64, CHUNK, |_, c| {
        chunks.push(c.to_vec());
        Ok(())
    })
    .expect("sealed");
    let d = sealed.descriptor("a.bin".into(), "application/octet-stream".into(), None);
    (d, sealed.list, chunks)
}

pub(crate) async fn put(api: &Api, token: &str, path: &str, body: Vec<u8>) -> Reply {
    api.send(
        api.http
            .put(format!("{}{path}", api.base))
            .bearer_auth(token)
            .header("content-type", "application/octet-stream")
            .body(body),
    )
    .await
}

pub(crate) async fn get_bytes(
    api: &Api,
    token: &str,
    path: &str,
    range: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let mut req = api
        .http
        .get(format!("{}{path}", api.base))
        .bearer_auth(token);
    if let Some(r) = range {
        req = req.header("range", r);
    }
    let r = req.send().await.expect("the node answers");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.bytes().await.expect("body").to_vec())
}

pub(crate) fn list_path(list: &ChunkList) -> String {
    format!(
        "/v1/files/{}/list?size={}&chunk_size={}",
        hex::encode(list.address()),
        list.size,
        list.chunk_size
    )
}

#[test]
fn a_file_goes_up_in_chunks_resumes_and_comes_back_whole_and_by_range() {
    let mut node = Node::with_config_extra("[files]\nmax_file_mib = 4\n");
    node.start();
    rt().block_on(async {
        let api = Api::new(&node);
        let (alice, bob) = (UserKey::from_secret([1; 32]), UserKey::from_secret([2; 32]));
        let (ta, tb) = (api.sign_in(&alice).await, api.sign_in(&bob).await);
        let room_event = create(&alice, true);
        let room = RoomId::from(room_event.id());
        assert_eq!(api.post_event(&ta, &room_event).await.status, 201);

        let data = pseudo_random(3 * 1024 * 1024 + 12_345, 7);
        let (descriptor, list, chunks) = seal(&data);
        let address = hex::encode(list.address());
        let file = format!("/v1/files/{address}");
        let n = chunks.len() as u64;
        assert_eq!(n, 13);

        // Nothing yet; a chunk before its list.
        api.get(&file, Some(&ta)).await.refused(404, "unknown_file");
        put(&api, &ta, &format!("{file}/chunks/0"), chunks[0].clone())
            .await
            .refused(404, "no_list");
        // A list that is not the one the address names.
        let mut other = list.clone();
        other.hashes[0][0] ^= 1;
        put(&api, &ta, &list_path(&list), other.to_bytes())
            .await
            .refused(400, "bad_list");
        // The list: stored, then already held.
        let r = put(&api, &ta, &list_path(&list), list.to_bytes()).await;
        assert_eq!(r.status, 201, "{}", r.body);
        assert_eq!(r.body["state"], "partial");
        assert_eq!(r.body["held"], 0);
        assert_eq!(r.body["chunks"], n);
        assert_eq!(
            put(&api, &ta, &list_path(&list), list.to_bytes())
                .await
                .status,
            200
        );

        // Bad chunks: a flipped byte, a longer body, a chunk that is not there.
        let mut flipped = chunks[0].clone();
        flipped[100] ^= 1;
        put(&api, &ta, &format!("{file}/chunks/0"), flipped)
            .await
            .refused(400, "bad_chunk");
        let mut longer = chunks[0].clone();
        longer.push(0);
        put(&api, &ta, &format!("{file}/chunks/0"), longer)
            .await
            .refused(400, "bad_chunk");
        put(&api, &ta, &format!("{file}/chunks/{n}"), chunks[0].clone())
            .await
            .refused(400, "bad_chunk");

        // A truncated upload: all but the last three chunks. It stays, resumable.
        for (i, c) in chunks.iter().enumerate().take(chunks.len() - 3) {
            let r = put(&api, &ta, &format!("{file}/chunks/{i}"), c.clone()).await;
            assert_eq!(r.status, 201, "chunk {i}: {}", r.body);
        }
        let r = api.get(&file, Some(&ta)).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["state"], "partial");
        assert_eq!(r.body["held"], n - 3);
        assert_eq!(r.body["missing"], serde_json::json!([n - 3, n - 2, n - 1]));
        api.get(&format!("{file}/data"), Some(&ta))
            .await
            .refused(409, "not_complete");
        let (status, _, _) = get_bytes(&api, &ta, &format!("{file}/chunks/{}", n - 1), None).await;
        assert_eq!(status, 404);
        // The resume: only what is missing.
        for i in n - 3..n {
            let r = put(
                &api,
                &ta,
                &format!("{file}/chunks/{i}"),
                chunks[i as usize].clone(),
            )
            .await;
            assert_eq!(r.status, 201, "{}", r.body);
        }
        assert_eq!(
            put(&api, &ta, &format!("{file}/chunks/0"), chunks[0].clone())
                .await
                .status,
            200
        );
        let r = api.get(&file, Some(&ta)).await;
        assert_eq!(r.body["state"], "complete", "{}", r.body);
        assert_eq!(r.body["missing"], serde_json::json!([]));

        // The message naming it: an encrypted room takes the EncryptedAttachment form only.
        let plain = sign(
            &alice,
            Some(room),
            5,
            basis_core::Body::Message(MessageBody::Attachment(descriptor.clone())),
        );
        api.post_event(&ta, &plain)
            .await
            .refused(400, "must_encrypt");
        let message = sign(
            &alice,
            Some(room),
            6,
            basis_core::Body::Message(MessageBody::EncryptedAttachment {
                blob: list.blob_ref(),
                session_id: vec![1; 32],
                ciphertext: vec![2; 64],
            }),
        );
        let r = api.post_event(&ta, &message).await;
        assert_eq!(r.status, 201, "{}", r.body);

        // The whole data, streamed: opens to the original bytes.
        let (status, headers, body) = get_bytes(&api, &ta, &format!("{file}/data"), None).await;
        assert_eq!(status, 200);
        assert_eq!(headers["accept-ranges"], "bytes");
        assert_eq!(body.len() as u64, list.blob_ref().stored_bytes());
        assert_eq!(body, chunks.concat());
        let opener = ChunkOpener::new(&descriptor).expect("an opener");
        let mut opened = Vec::new();
        let step = CHUNK as usize + 16;
        for (i, c) in body.chunks(step).enumerate() {
            opened.extend_from_slice(&opener.open(i as u64, c).expect("opens"));
        }
        assert_eq!(Sha256::digest(&opened), Sha256::digest(&data));

        // Ranges: a resume from the middle, the tail, one outside.
        let total = body.len();
        let (status, headers, part) =
            get_bytes(&api, &ta, &format!("{file}/data"), Some("bytes=1000000-")).await;
        assert_eq!(status, 206);
        assert_eq!(
            headers["content-range"],
            format!("bytes 1000000-{}/{total}", total - 1).as_str()
        );
        assert_eq!(part, body[1_000_000..]);
        let (status, _, part) =
            get_bytes(&api, &ta, &format!("{file}/data"), Some("bytes=10-19")).await;
        assert_eq!((status, part.as_slice()), (206, &body[10..20]));
        let (status, _, part) =
            get_bytes(&api, &ta, &format!("{file}/data"), Some("bytes=-7")).await;
        assert_eq!((status, part.as_slice()), (206, &body[total - 7..]));
        let (status, headers, _) = get_bytes(
            &api,
            &ta,
            &format!("{file}/data"),
            Some(&format!("bytes={total}-")),
        )
        .await;
        assert_eq!(status, 416);
        assert_eq!(
            headers["content-range"],
            format!("bytes */{total}").as_str()
        );
        // One chunk.
        let (status, _, one) = get_bytes(&api, &ta, &format!("{file}/chunks/2"), None).await;
        assert_eq!((status, &one), (200, &chunks[2]));

        // Bob has no standing in the room: the file does not exist for him.
        api.get(&file, Some(&tb)).await.refused(404, "unknown_file");
        let (status, _, _) = get_bytes(&api, &tb, &format!("{file}/chunks/0"), None).await;
        assert_eq!(status, 404);
        let (status, _, _) = get_bytes(&api, &tb, &format!("{file}/data"), None).await;
        assert_eq!(status, 404);

        // Over the limit (4 MiB here): refused before a byte is stored, saying the limit.
        let big = BlobRef {
            address: [9; 32],
            size: 5 * 1024 * 1024,
            chunk_size: CHUNK,
        };
        let r = put(
            &api,
            &ta,
            &format!(
                "/v1/files/{}/list?size={}&chunk_size={CHUNK}",
                hex::encode(big.address),
                big.size
            ),
            vec![0; 100],
        )
        .await;
        r.refused(413, "file_too_large");
        assert!(
            r.body["message"].as_str().unwrap_or("").contains("4 MiB"),
            "{}",
            r.body
        );
        let lists: Vec<_> = fs::read_dir(node.data.join("blobs/lists"))
            .expect("the blob store's lists")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(lists, [address], "only the uploaded file's list");

        // The status says the limit, for clients to check before sealing.
        let status = api.get("/v1/status", None).await;
        assert_eq!(status.body["max_file_bytes"], 4 * 1024 * 1024);
    });
    node.stop();
}

/// A user of the `basis` commands on this host.
struct User {
    dir: tempfile::TempDir,
}

impl User {
    fn new() -> User {
        User {
            dir: tempfile::Builder::new()
                .prefix("basis-user")
                .tempdir_in("/tmp")
                .expect("a client folder"),
        }
    }

    fn run(&self, node: &Node, args: &[&str]) -> Output {
        let mut cmd = clean_command();
        cmd.env("BASIS_NODE", node.api_url())
            .env("BASIS_CLIENT_DIR", self.dir.path())
            .env("BASIS_PASSPHRASE", "a long test passphrase")
            .env("BASIS_KDF", "fast")
            .args(args);
        run_with_timeout(cmd, Duration::from_secs(120))
    }

    fn ok(&self, node: &Node, args: &[&str]) -> String {
        let out = self.run(node, args);
        assert!(
            out.status.success(),
            "basis {args:?} failed\n{}\n--- node log ---\n{}",
            describe(&out),
            node.log_text()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

#[test]
fn send_file_history_and_download_with_a_hostile_name() {
    let mut node = Node::with_config_extra("[files]\nmax_file_mib = 2\n");
    node.start();
    let (alice, bob) = (User::new(), User::new());
    alice.ok(&node, &["user", "create", "--name", "Alice"]);
    bob.ok(&node, &["user", "create", "--name", "Bob"]);
    let bob_id: serde_json::Value =
        serde_json::from_str(bob.ok(&node, &["user", "show", "--json"]).trim()).expect("json");
    let bob_id = bob_id["user"].as_str().expect("an id").to_string();
    alice.ok(&node, &["room", "create", "ops"]);
    alice.ok(&node, &["room", "invite", "ops", &bob_id]);
    bob.ok(&node, &["room", "join", "ops"]);

    let files = tempfile::tempdir().expect("a folder");
    // A name with separators of another system and control characters (a terminal escape).
    let hostile = "..\\..\\evil\u{1b}[31m\u{7}.txt";
    let path = files.path().join(hostile);
    let data = pseudo_random(1024 * 1024 + 4321, 3);
    fs::write(&path, &data).expect("write the file");
    let path_text = path.to_str().expect("a UTF-8 path");
    let sent = alice.ok(&node, &["send", "ops", "--file", path_text, "--json"]);
    let sent: serde_json::Value = serde_json::from_str(sent.trim()).expect("json");
    let id = sent["id"].as_str().expect("an id")[..8].to_string();

    // Over the limit: refused before anything is sealed or sent.
    let big = files.path().join("big.bin");
    fs::write(&big, vec![1u8; 2 * 1024 * 1024 + 1]).expect("write");
    let out = alice.run(
        &node,
        &["send", "ops", "--file", big.to_str().expect("utf-8")],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("2.0 MiB") && err.contains("nothing was sent"),
        "{err}"
    );

    // History shows the file, safely named, with its size and that it is here.
    let history = bob.ok(&node, &["history", "ops"]);
    let line = history
        .lines()
        .find(|l| l.contains(&id))
        .unwrap_or_else(|| panic!("no line {id} in\n{history}"));
    assert!(line.contains("evil_[31m_.txt"), "{line}");
    assert!(
        line.contains("1.0 MiB") && line.contains("[here]"),
        "{line}"
    );
    assert!(
        !history.contains('\u{1b}'),
        "no escape reaches the terminal"
    );
    // `--json` gives the same: the line's file, and where it stands on the node.
    let json: serde_json::Value =
        serde_json::from_str(&bob.ok(&node, &["history", "ops", "--json"])).expect("JSON");
    let line = json["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .find(|l| l["id"].as_str().is_some_and(|full| full.starts_with(&id)))
        .unwrap_or_else(|| panic!("no line {id} in {json}"));
    assert_eq!(line["on_node"]["state"], "complete", "{line}");
    assert_eq!(line["on_node"]["size"], data.len(), "{line}");
    assert_eq!(line["on_node"]["held"], line["on_node"]["chunks"], "{line}");

    // Bob downloads it twice: the same bytes; the second time it is recognised.
    let to = tempfile::tempdir().expect("a folder");
    let to_text = to.path().to_str().expect("utf-8");
    bob.ok(&node, &["download", "ops", &id, "--to", to_text]);
    let saved = to.path().join("evil_[31m_.txt");
    let got = fs::read(&saved).expect("saved under the safe name");
    assert_eq!(Sha256::digest(&got), Sha256::digest(&data));
    let again = bob.ok(&node, &["download", "ops", &id, "--to", to_text]);
    assert!(again.contains("identical"), "{again}");
    // A different file of that name is kept; the download gets `name (1).ext`.
    fs::write(&saved, b"Bob's own notes").expect("write");
    bob.ok(&node, &["download", "ops", &id, "--to", to_text]);
    assert_eq!(fs::read(&saved).expect("kept"), b"Bob's own notes");
    let numbered = fs::read(to.path().join("evil_[31m_ (1).txt")).expect("numbered");
    assert_eq!(Sha256::digest(&numbered), Sha256::digest(&data));
    let names: Vec<String> = fs::read_dir(to.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "nothing else written: {names:?}");
    // Nothing was written outside the folder.
    assert!(!to.path().parent().expect("parent").join("evil").exists());
    // A folder that does not exist yet is made, as `mkdir -p` would.
    let new = to.path().join("new").join("sub");
    let out = bob.ok(
        &node,
        &["download", "ops", &id, "--to", new.to_str().expect("utf-8")],
    );
    assert!(out.contains("saved"), "{out}");
    let got = fs::read(new.join("evil_[31m_.txt")).expect("saved in the new folder");
    assert_eq!(Sha256::digest(&got), Sha256::digest(&data));
    // A file where the folder should be is refused, and left alone.
    let file = to.path().join("numbered-notes.txt");
    fs::write(&file, b"notes").expect("write");
    let out = bob.run(
        &node,
        &[
            "download",
            "ops",
            &id,
            "--to",
            file.to_str().expect("utf-8"),
        ],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is a file, not a folder"),
        "{}",
        describe(&out)
    );
    assert_eq!(fs::read(&file).expect("kept"), b"notes");
    node.stop();
}
