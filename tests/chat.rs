//! End-to-end encrypted chat through the `basis` client commands: two users on two federated
//! nodes (netns lab, root), a removed member (loopback), and keys rotated while a member is
//! cut off by a partition (netns lab).

use crate::common;
use crate::lab;
use crate::lab_node;

use std::fs;
use std::process::{Command, Output};
use std::thread;
use std::time::{Duration, Instant};

use basis_core::encoding::decode_event;
use basis_core::{Body, MessageBody, RoomId};
use basis_e2ee::{DecryptError, RoomKeys, keyfile};
use common::{Node, clean_command, describe, open_db_ro, run_with_timeout};
use lab::lab_or_skip;
use lab_node::LabNode;
use serde_json::Value;

const SECRET: &str = "orange harbour 7";
const PASSPHRASE: &str = "a long test passphrase";
/// Upper bound for anything to cross the federation; tests finish as soon as it happens.
const SYNC: Duration = Duration::from_secs(60);

/// A user with a client folder, talking to one node.
pub(crate) struct User {
    dir: tempfile::TempDir,
}

/// Where a client command runs: in a lab host's namespace, or on this host.
pub(crate) enum At<'a> {
    Lab(&'a LabNode),
    Here(&'a Node),
}

impl At<'_> {
    fn node(&self) -> &Node {
        match self {
            At::Lab(l) => &l.node,
            At::Here(n) => n,
        }
    }

    fn command(&self) -> Command {
        let mut cmd = match self {
            At::Lab(l) => {
                let mut c = l.host.command(env!("CARGO_BIN_EXE_basis"));
                for (name, _) in std::env::vars_os() {
                    if name.to_str().is_some_and(|n| n.starts_with("BASIS_")) {
                        c.env_remove(name);
                    }
                }
                c
            }
            At::Here(_) => clean_command(),
        };
        cmd.env("BASIS_NODE", self.node().api_url());
        cmd
    }
}

impl User {
    pub(crate) fn new() -> User {
        User {
            dir: tempfile::Builder::new()
                .prefix("basis-user")
                .tempdir_in("/tmp")
                .unwrap(),
        }
    }

    pub(crate) fn run(&self, at: &At, args: &[&str]) -> Output {
        let mut cmd = at.command();
        cmd.env("BASIS_CLIENT_DIR", self.dir.path())
            .env("BASIS_PASSPHRASE", PASSPHRASE)
            .env("BASIS_KDF", "fast")
            .args(args);
        run_with_timeout(cmd, Duration::from_secs(120))
    }

    pub(crate) fn ok(&self, at: &At, args: &[&str]) -> String {
        let out = self.run(at, args);
        assert!(
            out.status.success(),
            "basis {args:?} failed\n{}\n--- node log ---\n{}",
            describe(&out),
            at.node().log_text()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub(crate) fn json(&self, at: &At, args: &[&str]) -> Value {
        let text = self.ok(at, args);
        serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{args:?}: {e}: {text}"))
    }

    pub(crate) fn id(&self, at: &At) -> String {
        self.json(at, &["user", "show", "--json"])["user"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Texts of the room's readable text lines, oldest first.
    fn texts(&self, at: &At, room: &str) -> Vec<String> {
        let h = self.json(at, &["history", room, "--json", "--limit", "200"]);
        h["lines"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["shown"]["type"] == "text")
            .map(|l| l["shown"]["text"].as_str().unwrap().to_string())
            .collect()
    }
}

/// Polls `check` until it holds or `SYNC` passes.
pub(crate) fn wait_until(what: &str, check: impl FnMut() -> bool) -> Duration {
    common::wait_until_with(SYNC, Duration::from_millis(300), what, check, String::new)
}

/// The room's entry in `basis rooms --json`, by name.
pub(crate) fn room_entry(user: &User, at: &At, name: &str) -> Option<Value> {
    let rooms = user.json(at, &["rooms", "--json"]);
    rooms
        .as_array()?
        .iter()
        .find(|r| r["name"] == name)
        .cloned()
}

/// True when `member` is joined in the room as `user` sees it, with a published key.
pub(crate) fn sees_joined(user: &User, at: &At, room: &str, member: &str) -> bool {
    room_entry(user, at, room).is_some_and(|r| {
        r["members"].as_array().is_some_and(|ms| {
            ms.iter().any(|m| {
                m["user"] == member && m["standing"] == "joined" && m["agreement_key"].is_string()
            })
        })
    })
}

/// The database files of a node, for searching their raw bytes.
fn db_bytes(node: &Node) -> Vec<u8> {
    let mut all = Vec::new();
    for suffix in ["", "-wal"] {
        let p = format!("{}{suffix}", node.db_path().display());
        if let Ok(b) = fs::read(&p) {
            all.extend(b);
        }
    }
    all
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn two_users_on_two_nodes_chat_edit_react_delete_and_agree() {
    let lab = lab_or_skip!();
    let fed = format!("secret = \"{SECRET}\"");
    let (mut n1, mut n2) = (
        LabNode::new(&lab, "n1", &fed),
        LabNode::new(&lab, "n2", &fed),
    );
    n1.start();
    n2.start();
    let (at1, at2) = (At::Lab(&n1), At::Lab(&n2));
    let (alice, bob) = (User::new(), User::new());
    alice.ok(&at1, &["user", "create", "--name", "Alice"]);
    bob.ok(&at2, &["user", "create", "--name", "Bob"]);
    let bob_id = bob.id(&at2);
    alice.ok(&at1, &["contacts", "add", "bob", &bob_id]);
    alice.ok(&at1, &["room", "create", "ops"]);
    alice.ok(&at1, &["room", "invite", "ops", "bob"]);
    let took = wait_until("bob's node shows him the invitation", || {
        room_entry(&bob, &at2, "ops").is_some_and(|r| r["standing"] == "invited")
    });
    eprintln!("the invitation reached node 2 in {took:?}");
    bob.ok(&at2, &["room", "join", "ops"]);
    wait_until("alice's node sees bob joined with his key", || {
        sees_joined(&alice, &at1, "ops", &bob_id)
    });

    let words = [
        "marmalade zeppelin",
        "quartz lantern",
        "velvet tugboat",
        "saffron anvil",
    ];
    let sent = alice.json(&at1, &["send", "ops", words[0], "--json"]);
    let alice_msg = sent["id"].as_str().unwrap().to_string();
    let took = wait_until("bob reads alice's message", || {
        bob.texts(&at2, "ops").contains(&words[0].to_string())
    });
    eprintln!("an encrypted message went from node 1 to bob on node 2 in {took:?}");
    let sent = bob.json(&at2, &["send", "ops", words[1], "--json"]);
    let bob_msg = sent["id"].as_str().unwrap().to_string();
    bob.ok(&at2, &["send", "ops", words[3]]);
    wait_until("alice reads bob's messages", || {
        let t = alice.texts(&at1, "ops");
        t.contains(&words[1].to_string()) && t.contains(&words[3].to_string())
    });
    alice.ok(&at1, &["edit", "ops", &alice_msg[..8], words[2]]);
    bob.ok(&at2, &["react", "ops", &alice_msg[..8], "👍"]);
    bob.ok(&at2, &["delete", "ops", &bob_msg[..8]]);
    bob.ok(&at2, &["read", "ops"]);

    // Both sides show the same thing: the edit, the reaction, the deletion, the receipt.
    let view = |u: &User, at: &At| {
        let h = u.json(at, &["history", "ops", "--json", "--limit", "200"]);
        (h["lines"].clone(), h["receipts"].clone())
    };
    wait_until("both histories agree", || {
        view(&alice, &at1) == view(&bob, &at2)
    });
    let (lines, receipts) = view(&alice, &at1);
    let line = |id: &str| {
        lines
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no line {id} in {lines}"))
    };
    let a = line(&alice_msg);
    assert_eq!(a["shown"]["text"], words[2], "{a}");
    assert_eq!(a["shown"]["edited"], true);
    assert_eq!(a["reactions"]["👍"][0], bob_id.as_str(), "{a}");
    assert_eq!(line(&bob_msg)["shown"]["type"], "deleted");
    assert!(
        receipts[&bob_id]["read"].is_string(),
        "bob's read receipt: {receipts}"
    );
    let texts = alice.texts(&at1, "ops");
    assert_eq!(texts, vec![words[2].to_string(), words[3].to_string()]);

    // Presence crosses the federation: bob's chat on node 2 hears alice open hers on node 1.
    let mut bob_chat = Running::spawn(&bob, &at2, &["chat", "ops"]);
    bob_chat.expect("── ops");
    let mut alice_chat = Running::spawn(&alice, &at1, &["chat", "ops"]);
    alice_chat.expect("── ops");
    bob_chat.expect("is online");
    alice_chat.type_line("/quit");
    bob_chat.expect("is offline");
    alice_chat.finish();
    bob_chat.finish();

    // Neither node's database holds a word of it.
    for (name, node) in [("node 1", &n1.node), ("node 2", &n2.node)] {
        let bytes = db_bytes(node);
        assert!(bytes.len() > 10_000, "{name}: the database was read");
        for w in words {
            for part in w.split(' ') {
                assert!(!contains(&bytes, part), "{name}'s database holds {part:?}");
            }
        }
    }
}

#[test]
fn a_removed_member_reads_what_came_before_and_nothing_after() {
    let mut node = Node::new();
    node.start();
    let at = At::Here(&node);
    let (alice, bob, carol) = (User::new(), User::new(), User::new());
    alice.ok(&at, &["user", "create"]);
    bob.ok(&at, &["user", "create"]);
    carol.ok(&at, &["user", "create"]);
    let (bob_id, carol_id) = (bob.id(&at), carol.id(&at));
    alice.ok(&at, &["room", "create", "ops"]);
    alice.ok(&at, &["room", "invite", "ops", &bob_id, &carol_id]);
    bob.ok(&at, &["room", "join", "ops"]);
    carol.ok(&at, &["room", "join", "ops"]);
    let (before, after) = ("pelican before removal", "walrus after removal");
    alice.ok(&at, &["send", "ops", before]);
    assert_eq!(carol.texts(&at, "ops"), vec![before.to_string()]);
    alice.ok(&at, &["room", "remove", "ops", &carol_id]);
    alice.ok(&at, &["send", "ops", after]);
    assert_eq!(
        bob.texts(&at, "ops"),
        vec![before.to_string(), after.to_string()]
    );
    // Through the node, carol still reads what came before and sees nothing after.
    assert_eq!(carol.texts(&at, "ops"), vec![before.to_string()]);

    // A carol who gets every ciphertext anyway (say she runs a node of the federation):
    // with her own keys she opens the old message and not the new one.
    let key_text = fs::read_to_string(carol.dir.path().join("user.key")).unwrap();
    let secrets = keyfile::decrypt(&key_text, PASSPHRASE.as_bytes()).unwrap();
    let conn = open_db_ro(&node.db_path());
    let columns = basis_store::wire::COLUMNS;
    let sql = format!("SELECT {columns} FROM events ORDER BY seq");
    let mut stmt = conn.prepare(&sql).unwrap();
    let events: Vec<_> = stmt
        .query_map([], |r| basis_store::wire::wire(r, 0))
        .unwrap()
        .map(|r| decode_event(&r.unwrap()).unwrap())
        .collect();
    let mut keys = RoomKeys::new();
    for e in &events {
        if let Body::KeyShare(share) = &e.content.body {
            let _ = keys.absorb(e.room_id(), e.content.author, share, &secrets);
        }
    }
    let (mut read, mut locked) = (Vec::new(), 0);
    for e in &events {
        if let Body::Message(MessageBody::Encrypted {
            session_id,
            ciphertext,
        }) = &e.content.body
        {
            let room: RoomId = e.room_id();
            match keys.decrypt(room, e.content.author, session_id, ciphertext) {
                Ok(p) => read.push(p.body),
                Err(DecryptError::NoSession) => locked += 1,
                Err(other) => panic!("unexpected decryption error: {other}"),
            }
        }
    }
    assert_eq!(
        read,
        vec![MessageBody::Text {
            text: before.into()
        }]
    );
    assert_eq!(locked, 1, "the message after the removal stays locked");
    node.stop();
}

#[test]
fn keys_rotated_during_a_partition_reach_the_member_after_it_heals() {
    let lab = lab_or_skip!();
    let fed = format!("secret = \"{SECRET}\"");
    let (mut n1, mut n2) = (
        LabNode::new(&lab, "p1", &fed),
        LabNode::new(&lab, "p2", &fed),
    );
    n1.start();
    n2.start();
    let (at1, at2) = (At::Lab(&n1), At::Lab(&n2));
    let (alice, bob, carol) = (User::new(), User::new(), User::new());
    alice.ok(&at1, &["user", "create"]);
    carol.ok(&at1, &["user", "create"]);
    bob.ok(&at2, &["user", "create"]);
    let (bob_id, carol_id) = (bob.id(&at2), carol.id(&at1));
    alice.ok(&at1, &["room", "create", "field"]);
    alice.ok(&at1, &["room", "invite", "field", &bob_id]);
    wait_until("bob sees the invitation", || {
        room_entry(&bob, &at2, "field").is_some()
    });
    bob.ok(&at2, &["room", "join", "field"]);
    wait_until("alice sees bob joined", || {
        sees_joined(&alice, &at1, "field", &bob_id)
    });
    alice.ok(&at1, &["send", "field", "lighthouse one"]);
    wait_until("bob reads the first message", || {
        bob.texts(&at2, "field") == vec!["lighthouse one".to_string()]
    });

    // Cut node 2 off. A membership change on node 1 makes alice's next message use a new
    // session, whose key share for bob cannot reach him now.
    lab.set_link(&n2.host, false);
    alice.ok(&at1, &["room", "invite", "field", &carol_id]);
    carol.ok(&at1, &["room", "join", "field"]);
    let during = ["lighthouse two", "lighthouse three", "lighthouse four"];
    for w in during {
        alice.ok(&at1, &["send", "field", w]);
    }
    bob.ok(&at2, &["send", "field", "from the far side"]);
    thread::sleep(Duration::from_secs(2));
    assert_eq!(
        bob.texts(&at2, "field"),
        vec![
            "lighthouse one".to_string(),
            "from the far side".to_string()
        ],
        "nothing crossed the partition"
    );

    lab.set_link(&n2.host, true);
    let took = wait_until("bob reads every message after the partition heals", || {
        let t = bob.texts(&at2, "field");
        during.iter().all(|w| t.contains(&w.to_string()))
    });
    eprintln!("after the heal bob read the rotated-key messages in {took:?}");
    wait_until("alice reads bob's message from the other side", || {
        alice
            .texts(&at1, "field")
            .contains(&"from the far side".to_string())
    });
    // Carol joined after the first message: she reads from her join on.
    let carol_texts = carol.texts(&at1, "field");
    assert!(!carol_texts.contains(&"lighthouse one".to_string()));
    assert!(carol_texts.contains(&"lighthouse two".to_string()));
}

/// A client command left running, its output read line by line.
struct Running {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn spawn(user: &User, at: &At, args: &[&str]) -> Running {
        use std::io::BufRead;
        let mut cmd = at.command();
        cmd.env("BASIS_CLIENT_DIR", user.dir.path())
            .env("BASIS_PASSPHRASE", PASSPHRASE)
            .env("BASIS_KDF", "fast")
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null());
        let mut child = cmd.spawn().expect("start the client");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a line containing `text`; returns it.
    fn expect(&mut self, text: &str) -> String {
        if let Some(l) = self.seen.iter().find(|l| l.contains(text)) {
            return l.clone();
        }
        let deadline = Instant::now() + SYNC;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(text) {
                        return line;
                    }
                }
                Err(_) => panic!("no line with {text:?}; got:\n{}", self.seen.join("\n")),
            }
        }
    }

    fn type_line(&mut self, line: &str) {
        use std::io::Write;
        let stdin = self.child.stdin.as_mut().expect("stdin");
        writeln!(stdin, "{line}").expect("type into the client");
    }

    fn finish(mut self) {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "the client did not end");
            thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn chat_and_tail_follow_a_room_live() {
    let mut node = Node::new();
    node.start();
    let at = At::Here(&node);
    let (alice, bob, carol) = (User::new(), User::new(), User::new());
    alice.ok(&at, &["user", "create", "--name", "Alice"]);
    bob.ok(&at, &["user", "create", "--name", "Bob"]);
    carol.ok(&at, &["user", "create", "--name", "Carol"]);
    let (bob_id, carol_id) = (bob.id(&at), carol.id(&at));
    alice.ok(&at, &["room", "create", "ops"]);
    alice.ok(&at, &["room", "invite", "ops", &bob_id, &carol_id]);
    bob.ok(&at, &["room", "join", "ops"]);
    carol.ok(&at, &["room", "join", "ops"]);

    let mut tail = Running::spawn(&carol, &at, &["tail", "ops", "--json"]);
    let mut bob_chat = Running::spawn(&bob, &at, &["chat", "ops"]);
    bob_chat.expect("── ops");
    let mut alice_chat = Running::spawn(&alice, &at, &["chat", "ops"]);
    alice_chat.expect("── ops");
    bob_chat.expect("is online");
    // Alice types a message: Bob's chat and Carol's tail show it decrypted.
    alice_chat.type_line("kettle on the stove");
    let line = bob_chat.expect("kettle on the stove");
    let id = line.split_whitespace().nth(2).unwrap().to_string();
    let json = tail.expect("kettle on the stove");
    let v: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["body"]["Text"]["text"], "kettle on the stove");
    assert!(v["id"].as_str().unwrap().starts_with(&id), "{v} vs {id}");
    // Edits and reactions arrive and are shown as such.
    alice_chat.expect(&id);
    alice_chat.type_line(&format!("/edit {id} kettle is boiling"));
    bob_chat.expect(&format!("edited {id}: kettle is boiling"));
    bob_chat.type_line(&format!("/react {id} 🔥"));
    alice_chat.expect(&format!("reacted 🔥 to {id}"));
    // Bob's chat marks what he saw read; Carol's tail acknowledges delivery.
    alice_chat.expect("read up to");
    alice_chat.expect("received up to");
    alice_chat.type_line("/quit");
    bob_chat.expect("is offline");
    alice_chat.finish();
    bob_chat.finish();
    let _ = tail.child.kill();
    let _ = tail.child.wait();
    // What the chats did is in the room for anyone to read later.
    let h = bob.json(&at, &["history", "ops", "--json"]);
    let line = h["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["id"].as_str().unwrap().starts_with(&id))
        .cloned()
        .unwrap();
    assert_eq!(line["shown"]["text"], "kettle is boiling");
    assert_eq!(line["reactions"]["🔥"][0], bob_id.as_str());
    node.stop();
}

#[test]
fn a_direct_message_is_readable_once_the_other_accepts() {
    let mut node = Node::new();
    node.start();
    let at = At::Here(&node);
    let (alice, bob) = (User::new(), User::new());
    alice.ok(&at, &["user", "create"]);
    bob.ok(&at, &["user", "create"]);
    let bob_id = bob.id(&at);
    alice.ok(&at, &["contacts", "add", "bob", &bob_id]);
    alice.ok(&at, &["dm", "bob", "are you at the school"]);
    alice.ok(&at, &["dm", "bob", "bring the radio"]);
    // One room, with bob invited, however many messages.
    let rooms = bob.json(&at, &["rooms", "--json"]);
    let rooms = rooms.as_array().unwrap();
    assert_eq!(rooms.len(), 1, "{rooms:?}");
    assert_eq!(rooms[0]["standing"], "invited");
    let room = rooms[0]["room"].as_str().unwrap().to_string();
    bob.ok(&at, &["room", "join", &room[..12]]);
    assert_eq!(
        bob.texts(&at, &room[..12]),
        vec![
            "are you at the school".to_string(),
            "bring the radio".to_string()
        ]
    );
    node.stop();
}

/// Three users on one loopback node in room `ops`: alice made it and invited bob and carol,
/// who joined. Returns the users and their ids.
fn ops_room(at: &At) -> ([User; 3], [String; 3]) {
    let users = [User::new(), User::new(), User::new()];
    for (u, name) in users.iter().zip(["Alice", "Bob", "Carol"]) {
        u.ok(at, &["user", "create", "--name", name]);
    }
    let ids = [users[0].id(at), users[1].id(at), users[2].id(at)];
    users[0].ok(at, &["room", "create", "ops"]);
    users[0].ok(at, &["room", "invite", "ops", &ids[1], &ids[2]]);
    users[1].ok(at, &["room", "join", "ops"]);
    users[2].ok(at, &["room", "join", "ops"]);
    (users, ids)
}

/// The stderr of a command that must fail, after checking it failed.
fn fails(user: &User, at: &At, args: &[&str]) -> String {
    let out = user.run(at, args);
    assert!(
        !out.status.success(),
        "basis {args:?} should have failed\n{}",
        describe(&out)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The id of the line whose text is `text`, in `user`'s history of `room`.
fn line_id(user: &User, at: &At, room: &str, text: &str) -> String {
    let h = user.json(at, &["history", room, "--json", "--limit", "200"]);
    h["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["shown"]["text"] == text)
        .and_then(|l| l["id"].as_str())
        .unwrap_or_else(|| panic!("no line {text:?} in {h}"))
        .to_string()
}

#[test]
fn someone_elses_message_cannot_be_edited_or_deleted_and_live_views_agree() {
    let mut node = Node::new();
    node.start();
    let at = At::Here(&node);
    let ([alice, bob, _carol], _) = ops_room(&at);
    alice.ok(&at, &["send", "ops", "the bridge is out"]);
    let id = line_id(&alice, &at, "ops", "the bridge is out");
    let mut alice_chat = Running::spawn(&alice, &at, &["chat", "ops"]);
    alice_chat.expect("── ops");
    // Bob tries to edit and delete Alice's message: refused, nothing sent.
    let err = fails(&bob, &at, &["edit", "ops", &id[..8], "the bridge is fine"]);
    assert!(err.contains("someone else"), "{err}");
    let err = fails(&bob, &at, &["delete", "ops", &id[..8]]);
    assert!(err.contains("someone else"), "{err}");
    // The room's creation is not a message.
    let h = alice.json(&at, &["history", "ops", "--json"]);
    let created = h["lines"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(h["lines"][0]["shown"]["type"], "created");
    let err = fails(&alice, &at, &["delete", "ops", &created[..8]]);
    assert!(err.contains("not a message"), "{err}");
    // In the chat, /edit of someone else's message is refused too.
    let mut bob_chat = Running::spawn(&bob, &at, &["chat", "ops"]);
    bob_chat.expect(&id[..8]);
    bob_chat.type_line(&format!("/edit {} forged", &id[..8]));
    bob_chat.expect("someone else");
    // Alice's own edit shows live, and history agrees with the live view.
    alice_chat.type_line(&format!("/edit {} the bridge is out since 6:00", &id[..8]));
    bob_chat.expect(&format!(
        "edited {}: the bridge is out since 6:00",
        &id[..8]
    ));
    alice_chat.type_line("/quit");
    bob_chat.type_line("/quit");
    alice_chat.finish();
    let seen = bob_chat.seen.join("\n");
    bob_chat.finish();
    assert!(!seen.contains("forged"), "{seen}");
    assert_eq!(
        bob.texts(&at, "ops"),
        vec!["the bridge is out since 6:00".to_string()]
    );
    node.stop();
}

#[test]
fn a_direct_conversation_is_one_room_whoever_writes_and_is_named_by_the_contact() {
    let mut node = Node::new();
    node.start();
    let at = At::Here(&node);
    let (alice, bob) = (User::new(), User::new());
    alice.ok(&at, &["user", "create", "--name", "Alice"]);
    bob.ok(&at, &["user", "create", "--name", "Bob"]);
    let (alice_id, bob_id) = (alice.id(&at), bob.id(&at));
    alice.ok(&at, &["contacts", "add", "b", &bob_id]);
    bob.ok(&at, &["contacts", "add", "a", &alice_id]);
    alice.ok(&at, &["dm", "b", "are you at the school"]);
    // Bob is told how to answer, and answering lands in the same conversation.
    let rooms = bob.ok(&at, &["rooms"]);
    assert!(rooms.contains("answer with `basis dm a TEXT`"), "{rooms}");
    assert!(
        rooms.contains("  1 member ") && !rooms.contains("1 members"),
        "{rooms}"
    );
    bob.ok(&at, &["dm", "a", "yes, with the radio"]);
    alice.ok(&at, &["dm", "b", "good"]);
    for (user, contact) in [(&alice, "b"), (&bob, "a")] {
        let rooms = user.json(&at, &["rooms", "--json"]);
        let rooms = rooms.as_array().unwrap();
        assert_eq!(rooms.len(), 1, "{rooms:?}");
        assert_eq!(rooms[0]["display_name"], contact);
        assert_eq!(rooms[0]["direct"], true);
        assert_eq!(
            user.texts(&at, contact),
            vec![
                "are you at the school".to_string(),
                "yes, with the radio".to_string(),
                "good".to_string()
            ]
        );
    }
    // Its history says what it is, not the room's conventional name.
    let history = bob.ok(&at, &["history", "a"]);
    assert!(
        history.contains("* a started this direct conversation"),
        "{history}"
    );
    assert!(!history.contains("\"dm\""), "{history}");
    // "dm" is not a room name anyone has to type; a stranger is no contact.
    let err = fails(&alice, &at, &["history", "dm"]);
    assert!(err.contains("no room"), "{err}");
    let err = fails(&alice, &at, &["dm", "carol", "hi"]);
    assert!(err.contains("no contact named \"carol\""), "{err}");
    // Someone with no contact for Alice answers by the id prefix `basis rooms` suggests, and
    // is told whom the message went to by name.
    let carol = User::new();
    carol.ok(&at, &["user", "create", "--name", "Carol"]);
    alice.ok(&at, &["dm", &carol.id(&at), "is the road open?"]);
    let sent = carol.ok(&at, &["dm", &alice_id[..8], "it is"]);
    assert!(
        sent.contains(&format!("to Alice ({})", &alice_id[..8])),
        "{sent}"
    );
    // An empty message is refused before anything is sent, whichever way it would go.
    for args in [
        &["dm", "b", " "][..],
        &["send", "b", ""],
        &["edit", "b", "1a2b", "\t"],
    ] {
        let err = fails(&alice, &at, args);
        assert!(err.contains("the message is empty"), "{err}");
    }
    assert_eq!(alice.texts(&at, "b").len(), 3);
    node.stop();
}

#[test]
fn room_names_are_unique_and_members_are_named_by_id_prefix() {
    let mut node = Node::new();
    node.start();
    let at = At::Here(&node);
    let ([alice, _bob, carol], ids) = ops_room(&at);
    let err = fails(&alice, &at, &["room", "create", "ops"]);
    assert!(err.contains("already have a room named \"ops\""), "{err}");
    alice.ok(&at, &["send", "ops", "still one ops"]);
    // Members are shown as `<name> (5f7862fa)`: that prefix names them.
    alice.ok(&at, &["room", "remove", "ops", &ids[2][..6]]);
    let rooms = carol.json(&at, &["rooms", "--json"]);
    assert_eq!(rooms[0]["standing"], "removed", "{rooms}");
    node.stop();
}

#[test]
fn history_pages_show_messages_as_they_are_now_and_limits_count_messages() {
    let mut node = Node::new();
    node.start();
    let at = At::Here(&node);
    let ([alice, bob, _], _) = ops_room(&at);
    for i in 1..=6 {
        alice.ok(&at, &["send", "ops", &format!("report {i}")]);
    }
    bob.ok(&at, &["read", "ops"]);
    let first = line_id(&alice, &at, "ops", "report 1");
    let second = line_id(&alice, &at, "ops", "report 2");
    alice.ok(&at, &["edit", "ops", &first[..8], "report 1, corrected"]);
    alice.ok(&at, &["delete", "ops", &second[..8]]);
    // Three messages, whatever receipts and edits came after them.
    let page = bob.json(&at, &["history", "ops", "--json", "--limit", "3"]);
    let messages: Vec<&Value> = page["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| {
            ["text", "deleted", "unreadable"].contains(&l["shown"]["type"].as_str().unwrap())
        })
        .collect();
    assert_eq!(messages.len(), 3, "{page}");
    assert_eq!(messages[2]["shown"]["text"], "report 6");
    // The older page shows the edit and the delete that came later.
    let older = page["older"].as_str().expect("an older page").to_string();
    let page = bob.json(
        &at,
        &[
            "history", "ops", "--json", "--limit", "3", "--before", &older,
        ],
    );
    let shown: Vec<Value> = page["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| {
            l["author"] != Value::Null
                && l["shown"]["type"] != "membership"
                && l["shown"]["type"] != "created"
        })
        .map(|l| l["shown"].clone())
        .collect();
    assert_eq!(shown.len(), 3, "{page}");
    assert_eq!(shown[0]["text"], "report 1, corrected");
    assert_eq!(shown[0]["edited"], true);
    assert_eq!(shown[1]["type"], "deleted");
    assert_eq!(shown[2]["text"], "report 3");
    // The text form says where to go on.
    let text = bob.ok(&at, &["history", "ops", "--limit", "3"]);
    assert!(
        text.contains("older: basis history ops --before "),
        "{text}"
    );
    node.stop();
}

#[test]
fn times_are_local_with_the_zone_named_and_json_has_rfc3339() {
    let mut node = Node::new();
    node.start();
    let at = At::Here(&node);
    let ([alice, _, _], _) = ops_room(&at);
    alice.ok(&at, &["send", "ops", "tea at noon"]);
    let mut cmd = at.command();
    cmd.env("BASIS_CLIENT_DIR", alice.dir.path())
        .env("BASIS_PASSPHRASE", PASSPHRASE)
        .env("TZ", "Asia/Tokyo")
        .args(["history", "ops", "--json"]);
    let out = run_with_timeout(cmd, Duration::from_secs(60));
    let h: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", describe(&out)));
    let line = h["lines"].as_array().unwrap().last().unwrap().clone();
    let at_text = line["at"].as_str().unwrap();
    assert!(at_text.ends_with("+09:00"), "{line}");
    assert!(
        line["time"].is_u64() || line["time"].is_array() || line["time"].is_number(),
        "{line}"
    );
    let mut cmd = at.command();
    cmd.env("BASIS_CLIENT_DIR", alice.dir.path())
        .env("BASIS_PASSPHRASE", PASSPHRASE)
        .env("TZ", "Asia/Tokyo")
        .args(["history", "ops"]);
    let out = run_with_timeout(cmd, Duration::from_secs(60));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("times in JST"), "{text}");
    // The local hour and minute of the RFC 3339 time are what the line shows.
    let hhmm = &at_text[11..16];
    assert!(
        text.lines()
            .any(|l| l.contains(hhmm) && l.contains("tea at noon")),
        "{text}"
    );
    node.stop();
}

#[test]
fn a_display_name_given_while_no_node_answers_is_published_later() {
    let mut node = Node::new();
    node.start();
    let at = At::Here(&node);
    let (zed, alice) = (User::new(), User::new());
    // No node at that address: the key is made, the name kept.
    let mut cmd = clean_command();
    cmd.env("BASIS_CLIENT_DIR", zed.dir.path())
        .env("BASIS_PASSPHRASE", PASSPHRASE)
        .env("BASIS_KDF", "fast")
        .env("BASIS_NODE", "http://127.0.0.1:9")
        .args(["user", "create", "--name", "Zed"]);
    let out = run_with_timeout(cmd, Duration::from_secs(60));
    assert!(out.status.success(), "{}", describe(&out));
    let zed_id = zed.id(&at);
    // The next command that reaches a node publishes it.
    zed.ok(&at, &["rooms"]);
    alice.ok(&at, &["user", "create", "--name", "Alice"]);
    alice.ok(&at, &["room", "create", "ops"]);
    alice.ok(&at, &["room", "invite", "ops", &zed_id]);
    let room = room_entry(&alice, &at, "ops").unwrap();
    let member = room["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["user"] == zed_id.as_str())
        .cloned()
        .unwrap();
    assert_eq!(member["name"], "Zed", "{room}");
    node.stop();
}

#[test]
fn refusals_say_what_to_do_next() {
    let mut node = Node::new();
    node.start();
    let at = At::Here(&node);
    let (alice, bob, dave) = (User::new(), User::new(), User::new());
    for (u, n) in [(&alice, "Alice"), (&bob, "Bob"), (&dave, "Dave")] {
        u.ok(&at, &["user", "create", "--name", n]);
    }
    let (bob_id, dave_id) = (bob.id(&at), dave.id(&at));
    alice.ok(&at, &["room", "create", "ops"]);
    alice.ok(&at, &["send", "ops", "before dave came"]);
    alice.ok(&at, &["room", "invite", "ops", &bob_id, &dave_id]);
    // Invited but not joined.
    let err = fails(&bob, &at, &["send", "ops", "hello?"]);
    assert!(err.contains("join first: basis room join"), "{err}");
    bob.ok(&at, &["room", "join", "ops"]);
    bob.ok(&at, &["room", "leave", "ops"]);
    let err = fails(&bob, &at, &["send", "ops", "back again"]);
    assert!(
        err.contains("you left ops; ask a member to invite you again"),
        "{err}"
    );
    // A newcomer is told why older messages cannot be read.
    dave.ok(&at, &["room", "join", "ops"]);
    let out = dave.run(&at, &["history", "ops"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("1 message(s) were sent before you joined"),
        "{err}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("sent before you joined"));
    node.stop();
}

#[test]
fn chat_and_tail_reconnect_after_the_node_restarts_and_catch_up() {
    let mut node = Node::new();
    node.start();
    let url = node.api_url();
    let port = url.rsplit(':').next().unwrap().to_string();
    let at = At::Here(&node);
    let ([alice, bob, carol], _) = ops_room(&at);
    alice.ok(&at, &["send", "ops", "before the restart"]);
    let mut tail = Running::spawn(&carol, &at, &["tail", "ops", "--json"]);
    tail.expect("before the restart");
    let mut bob_chat = Running::spawn(&bob, &at, &["chat", "ops"]);
    bob_chat.expect("before the restart");
    node.stop();
    // The same node comes back on the same port.
    let mut cmd = node.command();
    cmd.arg("run")
        .arg("--set")
        .arg(format!("api.listen=127.0.0.1:{port}"));
    node.start_command(cmd);
    let at = At::Here(&node);
    alice.ok(&at, &["send", "ops", "after the restart"]);
    // Both catch up on what came while they were away, and follow on.
    tail.expect("after the restart");
    bob_chat.expect("after the restart");
    bob_chat.expect("reconnected");
    alice.ok(&at, &["send", "ops", "and later"]);
    tail.expect("and later");
    bob_chat.expect("and later");
    bob_chat.type_line("/quit");
    bob_chat.finish();
    let _ = tail.child.kill();
    let _ = tail.child.wait();
    // Each message once in the tail's JSON.
    let count = tail
        .seen
        .iter()
        .filter(|l| l.contains("after the restart"))
        .count();
    assert_eq!(count, 1, "{:?}", tail.seen);
    node.stop();
}
