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
struct User {
    dir: tempfile::TempDir,
}

/// Where a client command runs: in a lab host's namespace, or on this host.
enum At<'a> {
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
    fn new() -> User {
        User {
            dir: tempfile::Builder::new()
                .prefix("basis-user")
                .tempdir_in("/tmp")
                .unwrap(),
        }
    }

    fn run(&self, at: &At, args: &[&str]) -> Output {
        let mut cmd = at.command();
        cmd.env("BASIS_CLIENT_DIR", self.dir.path())
            .env("BASIS_PASSPHRASE", PASSPHRASE)
            .env("BASIS_KDF", "fast")
            .args(args);
        run_with_timeout(cmd, Duration::from_secs(120))
    }

    fn ok(&self, at: &At, args: &[&str]) -> String {
        let out = self.run(at, args);
        assert!(
            out.status.success(),
            "basis {args:?} failed\n{}\n--- node log ---\n{}",
            describe(&out),
            at.node().log_text()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn json(&self, at: &At, args: &[&str]) -> Value {
        let text = self.ok(at, args);
        serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{args:?}: {e}: {text}"))
    }

    fn id(&self, at: &At) -> String {
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
fn wait_until(what: &str, check: impl FnMut() -> bool) -> Duration {
    common::wait_until_with(SYNC, Duration::from_millis(300), what, check, String::new)
}

/// The room's entry in `basis rooms --json`, by name.
fn room_entry(user: &User, at: &At, name: &str) -> Option<Value> {
    let rooms = user.json(at, &["rooms", "--json"]);
    rooms
        .as_array()?
        .iter()
        .find(|r| r["name"] == name)
        .cloned()
}

/// True when `member` is joined in the room as `user` sees it, with a published key.
fn sees_joined(user: &User, at: &At, room: &str, member: &str) -> bool {
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
    let mut stmt = conn.prepare("SELECT raw FROM events ORDER BY seq").unwrap();
    let events: Vec<_> = stmt
        .query_map([], |r| r.get::<_, Vec<u8>>(0))
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
