//! File transfer over links in memory: [`Link`]s carry the frames, an [`Outbox`] per link end
//! orders and serves them, a [`Fetch`] on the receiving node asks, checks and stores. Bytes
//! on the wire are counted from the encoded frames.

use std::collections::{BTreeMap, HashMap};

use basis_core::file::chunk_hash;
use basis_core::{BlobRef, ChunkList};
use basis_proto::transfer::PENALTY_BAD_CHUNK;
use basis_proto::{Fetch, FetchAction, FetchState, FileFrame, Next, Outbox, Priority, Reputation};

use super::*;

/// A node's file chunks in memory: lists by address, chunks by hash.
#[derive(Default)]
struct Blobs {
    lists: HashMap<[u8; 32], Vec<u8>>,
    chunks: HashMap<[u8; 32], Vec<u8>>,
    /// Chunk indices this node serves with one bit flipped (a lying node).
    corrupt: bool,
}

impl Blobs {
    fn read(&self, job: &Next) -> Option<Vec<u8>> {
        match job {
            Next::Frame(_) => None,
            Next::List { address } => self.lists.get(address).cloned(),
            Next::Chunk { address, index } => {
                let list = ChunkList::from_bytes(self.lists.get(address)?).ok()?;
                let mut bytes = self.chunks.get(list.hashes.get(*index as usize)?)?.clone();
                if self.corrupt {
                    bytes[0] ^= 1;
                }
                Some(bytes)
            }
        }
    }
}

struct Node {
    id: NodeId,
    blobs: Blobs,
    fetch: Option<Fetch>,
    store: Store,
    penalties: BTreeMap<NodeId, u32>,
    completed: bool,
}

impl Node {
    fn new(n: u8) -> Node {
        Node {
            id: NodeId([n; 32]),
            blobs: Blobs::default(),
            fetch: None,
            store: Store::default(),
            penalties: BTreeMap::new(),
            completed: false,
        }
    }
}

/// One end of a link: its protocol state and its send queues.
struct End {
    node: usize,
    link: Link,
    outbox: Outbox,
}

/// Nodes and the links between them.
struct Net {
    nodes: Vec<Node>,
    links: Vec<(End, End)>,
    /// Bytes of encoded file frames (`List` and `Chunk`) delivered.
    file_bytes: u64,
    /// What each node received, by frame name, in order.
    received: Vec<Vec<&'static str>>,
}

/// A file of `chunks` chunks of 1 024 bytes (plus a short last one); the "ciphertext" is
/// patterned bytes, which is all a node ever sees.
pub(crate) fn file(chunks: u64) -> (ChunkList, Vec<Vec<u8>>) {
    let size = (chunks - 1) * 1024 + 100;
    let layout = BlobRef {
        address: [0; 32],
        size,
        chunk_size: 1024,
    };
    let data: Vec<Vec<u8>> = (0..chunks)
        .map(|i| {
            let len = layout.cipher_len(i).unwrap() as usize;
            (0..len)
                .map(|j| (j as u8) ^ (i as u8).wrapping_mul(31))
                .collect()
        })
        .collect();
    let list = ChunkList {
        chunk_size: 1024,
        size,
        hashes: data.iter().map(|c| chunk_hash(c)).collect(),
    };
    (list, data)
}

fn holding(node: &mut Node, list: &ChunkList, data: &[Vec<u8>]) {
    node.blobs.lists.insert(list.address(), list.to_bytes());
    for c in data {
        node.blobs.chunks.insert(chunk_hash(c), c.clone());
    }
}

impl Net {
    fn new(nodes: Vec<Node>) -> Net {
        let n = nodes.len();
        Net {
            nodes,
            links: Vec::new(),
            file_bytes: 0,
            received: vec![Vec::new(); n],
        }
    }

    /// Links node `a` (dialling) and node `b`; both are admitted by the shared secret.
    fn link(&mut self, a: usize, b: usize) {
        let exporter = [42u8; 32];
        let (id_a, id_b) = (self.nodes[a].id, self.nodes[b].id);
        let (la, acts_a) = Link::new(config(id_a.0[0], Some("s")), Role::Dialer, id_b, exporter);
        let (lb, acts_b) = Link::new(config(id_b.0[0], Some("s")), Role::Acceptor, id_a, exporter);
        let mut ea = End {
            node: a,
            link: la,
            outbox: Outbox::new(),
        };
        let mut eb = End {
            node: b,
            link: lb,
            outbox: Outbox::new(),
        };
        for (end, acts) in [(&mut ea, acts_a), (&mut eb, acts_b)] {
            for act in acts {
                if let Action::Send(f) = act {
                    end.outbox.push(f);
                }
            }
        }
        self.links.push((ea, eb));
    }

    /// Drops every link (a cut): what was queued or in flight is lost.
    fn cut(&mut self) {
        for (a, b) in std::mem::take(&mut self.links) {
            let (na, nb) = (a.node, b.node);
            let (ida, idb) = (self.nodes[na].id, self.nodes[nb].id);
            if let Some(f) = self.nodes[na].fetch.as_mut() {
                f.remove_peer(&idb, Instant::now());
            }
            if let Some(f) = self.nodes[nb].fetch.as_mut() {
                f.remove_peer(&ida, Instant::now());
            }
        }
    }

    /// Starts node `n`'s fetch of `blob`, resuming from what it holds, from every linked peer.
    fn fetch(&mut self, n: usize, blob: BlobRef) {
        let node = &mut self.nodes[n];
        let mut fetch = match node
            .blobs
            .lists
            .get(&blob.address)
            .and_then(|b| ChunkList::for_blob(b, &blob).ok())
        {
            Some(list) => {
                let missing: Vec<u64> = (0..list.hashes.len() as u64)
                    .filter(|&i| !node.blobs.chunks.contains_key(&list.hashes[i as usize]))
                    .collect();
                Fetch::resume(blob, list, &missing).unwrap()
            }
            None => Fetch::new(blob).unwrap(),
        };
        let peers: Vec<NodeId> = self
            .links
            .iter()
            .filter_map(|(a, b)| {
                if a.node == n {
                    Some(self.nodes[b.node].id)
                } else if b.node == n {
                    Some(self.nodes[a.node].id)
                } else {
                    None
                }
            })
            .collect();
        let mut acts = Vec::new();
        for p in peers {
            acts.extend(fetch.add_peer(p, None, Instant::now()));
        }
        self.nodes[n].fetch = Some(fetch);
        self.fetch_actions(n, acts);
    }

    /// The end of a link at node `n` towards `peer`.
    fn end_towards(&mut self, n: usize, peer: NodeId) -> Option<&mut End> {
        let ids: Vec<NodeId> = self.nodes.iter().map(|x| x.id).collect();
        self.links.iter_mut().find_map(|(a, b)| {
            if a.node == n && ids[b.node] == peer {
                Some(a)
            } else if b.node == n && ids[a.node] == peer {
                Some(b)
            } else {
                None
            }
        })
    }

    fn fetch_actions(&mut self, n: usize, mut acts: Vec<FetchAction>) {
        while let Some(act) = acts.pop() {
            match act {
                FetchAction::Send { peer, frame } => {
                    if let Some(end) = self.end_towards(n, peer) {
                        end.outbox.push(frame);
                    }
                }
                FetchAction::StoreList(list) => {
                    self.nodes[n]
                        .blobs
                        .lists
                        .insert(list.address(), list.to_bytes());
                }
                FetchAction::StoreChunk { index, bytes } => {
                    let node = &mut self.nodes[n];
                    node.blobs.chunks.insert(chunk_hash(&bytes), bytes);
                    if let Some(f) = node.fetch.as_mut() {
                        acts.extend(f.chunk_stored(index, Instant::now()));
                    }
                }
                FetchAction::Penalize { peer, points, .. } => {
                    *self.nodes[n].penalties.entry(peer).or_default() += points;
                }
                FetchAction::Complete => self.nodes[n].completed = true,
            }
        }
    }

    /// Sends one frame each way on every link, if any waits; false when all is quiet.
    fn step(&mut self, stop: &mut dyn FnMut(&Net) -> bool) -> bool {
        let mut moved = false;
        for l in 0..self.links.len() {
            for dir in [false, true] {
                if stop(self) {
                    return false;
                }
                let (from, to) = {
                    let (a, b) = &mut self.links[l];
                    if dir { (b, a) } else { (a, b) }
                };
                let Some(job) = from.outbox.pop() else {
                    continue;
                };
                let held = self.nodes[from.node].blobs.read(&job);
                let frame = job.answer(held);
                let bytes = frame.encode();
                if frame.priority() == Priority::File {
                    self.file_bytes += bytes.len() as u64;
                }
                moved = true;
                let (to_node, from_id) = (to.node, self.nodes[from.node].id);
                self.received[to_node].push(frame.name());
                let (to, store) = {
                    let (a, b) = &mut self.links[l];
                    let to = if dir { a } else { b };
                    (to, &mut self.nodes[to_node].store)
                };
                let acts = to.link.on_frame(&bytes, Instant::now(), store);
                let mut fetch_acts = Vec::new();
                for act in acts {
                    match act {
                        Action::Send(f) => to.outbox.push(f),
                        Action::File(FileFrame::Want {
                            address,
                            list,
                            ranges,
                        }) => {
                            to.outbox.on_want(address, list, &ranges).unwrap();
                        }
                        Action::File(f) => {
                            if let Some(fetch) = self.nodes[to_node].fetch.as_mut() {
                                fetch_acts.extend(fetch.on_frame(from_id, &f, Instant::now()));
                            }
                        }
                        _ => {}
                    }
                }
                self.fetch_actions(to_node, fetch_acts);
            }
        }
        moved
    }

    fn run_until(&mut self, mut stop: impl FnMut(&Net) -> bool) {
        for _ in 0..100_000 {
            if stop(self) || !self.step(&mut stop) {
                return;
            }
        }
        panic!("the transfer did not settle");
    }

    fn held(&self, n: usize, list: &ChunkList) -> usize {
        list.hashes
            .iter()
            .filter(|h| self.nodes[n].blobs.chunks.contains_key(*h))
            .count()
    }
}

fn all_there(net: &Net, n: usize, list: &ChunkList, data: &[Vec<u8>]) {
    for (i, h) in list.hashes.iter().enumerate() {
        assert_eq!(
            net.nodes[n].blobs.chunks.get(h),
            Some(&data[i]),
            "chunk {i}"
        );
    }
}

#[test]
fn a_file_crosses_a_link_whole_and_verified() {
    let (list, data) = file(64);
    let mut net = Net::new(vec![Node::new(1), Node::new(2)]);
    holding(&mut net.nodes[0], &list, &data);
    net.link(0, 1);
    net.run_until(|_| false); // hellos and reconciliation
    net.fetch(1, list.blob_ref());
    net.run_until(|net| net.nodes[1].completed);
    assert!(net.nodes[1].completed);
    assert_eq!(
        net.nodes[1].fetch.as_ref().unwrap().state(),
        FetchState::Complete
    );
    all_there(&net, 1, &list, &data);
    // Each chunk once: its bytes, its list's share, and at most 40 bytes of framing (tags,
    // address, index, length): 4 % of these 1 KiB test chunks, 0.02 % of 256 KiB ones.
    let stored = list.blob_ref().stored_bytes();
    let most = stored + list.to_bytes().len() as u64 + 40 * 64;
    assert!(
        net.file_bytes <= most,
        "{} bytes of file frames for {stored}",
        net.file_bytes
    );
    assert!(net.nodes[1].penalties.is_empty());
}

#[test]
fn messages_overtake_a_transfer_in_progress() {
    let (list, data) = file(64);
    let mut net = Net::new(vec![Node::new(1), Node::new(2)]);
    holding(&mut net.nodes[0], &list, &data);
    net.link(0, 1);
    net.run_until(|_| false);
    net.fetch(1, list.blob_ref());
    net.run_until(|net| net.held(1, &list) >= 4);
    // A message is queued at node 1 while chunks for node 2 wait in the same outbox.
    let evs = events(1, 9);
    net.links[0]
        .0
        .outbox
        .push(Frame::Events(vec![evs[1].2.clone()]));
    let before = net.received[1].len();
    net.run_until(|net| net.received[1].len() > before);
    assert_eq!(
        net.received[1][before], "events",
        "the message went before the next chunk"
    );
    net.run_until(|net| net.nodes[1].completed);
    all_there(&net, 1, &list, &data);
}

#[test]
fn a_transfer_cut_at_half_resumes_with_little_resent() {
    let (list, data) = file(200);
    let mut net = Net::new(vec![Node::new(1), Node::new(2)]);
    holding(&mut net.nodes[0], &list, &data);
    net.link(0, 1);
    net.run_until(|_| false);
    net.fetch(1, list.blob_ref());
    net.run_until(|net| net.held(1, &list) >= 100);
    let half = net.held(1, &list);
    assert!(half < 200);
    // The link is cut, and node 2 restarts: the fetch is rebuilt from what it stored.
    net.cut();
    net.nodes[1].fetch = None;
    net.link(0, 1);
    net.run_until(|_| false);
    net.fetch(1, list.blob_ref());
    assert_eq!(
        net.nodes[1].fetch.as_ref().unwrap().progress(),
        (half as u64, 200),
        "resumed from the chunks stored"
    );
    net.run_until(|net| net.nodes[1].completed);
    all_there(&net, 1, &list, &data);
    let stored = list.blob_ref().stored_bytes();
    let ratio = net.file_bytes as f64 / stored as f64;
    assert!(ratio <= 1.2, "{:.3}× the file crossed", ratio);
}

#[test]
fn a_lying_peers_chunks_are_refused_and_the_file_completes_from_an_honest_one() {
    let (list, data) = file(40);
    // Node 1 lies (serves every chunk with a bit flipped), node 3 is honest; node 2 fetches.
    let mut net = Net::new(vec![Node::new(1), Node::new(2), Node::new(3)]);
    holding(&mut net.nodes[0], &list, &data);
    net.nodes[0].blobs.corrupt = true;
    holding(&mut net.nodes[2], &list, &data);
    net.link(0, 1);
    net.link(1, 2);
    net.run_until(|_| false);
    net.fetch(1, list.blob_ref());
    net.run_until(|net| net.nodes[1].completed);
    all_there(&net, 1, &list, &data);
    let liar = net.nodes[0].id;
    assert_eq!(net.nodes[1].penalties.get(&liar), Some(&PENALTY_BAD_CHUNK));
    assert!(!net.nodes[1].penalties.contains_key(&net.nodes[2].id));
    // Counted like a forged event.
    let mut rep = Reputation::new();
    let now = Instant::now();
    rep.penalize(liar, PENALTY_BAD_CHUNK, "bad chunk", now);
    assert!(rep.score(liar, now) < basis_proto::reputation::START_SCORE);
}

#[test]
fn a_file_no_peer_holds_waits_for_one() {
    let (list, data) = file(5);
    let mut net = Net::new(vec![Node::new(1), Node::new(2)]);
    net.link(0, 1);
    net.run_until(|_| false);
    net.fetch(1, list.blob_ref());
    net.run_until(|_| false);
    assert_eq!(
        net.nodes[1].fetch.as_ref().unwrap().state(),
        FetchState::NoPeer
    );
    // Node 1 gets the file and announces it: node 2 fetches.
    holding(&mut net.nodes[0], &list, &data);
    net.links[0]
        .0
        .outbox
        .push(Frame::File(FileFrame::Have(vec![basis_proto::FileHave {
            address: list.address(),
            ranges: vec![basis_proto::ChunkRange { start: 0, end: 5 }],
        }])));
    net.run_until(|net| net.nodes[1].completed);
    all_there(&net, 1, &list, &data);
}
