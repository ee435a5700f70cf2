// The chat client's state and actions, apart from how they are drawn: the signed-in user,
// the node connection and its live stream, the rooms with their timelines, and the outbox.
// Every protocol step (signing, encryption, validation, the timeline's rules) is done by the
// wasm module built from basis-core and basis-e2ee; this file only moves bytes and keeps state.

import { ApiError, Node, Unreachable, base64, unbase64 } from './api.js';
import { DEFAULT_FILE_LIMIT, missingChunks, readSlice, sizeText, sleep, thumbnail } from './files.js';
import { kept, nickname, store } from './store.js';
import { basis } from './wasm.js';

/** Events asked for per history page. */
const PAGE = 100;
/** Older pages read at most to find the key shares that the shown messages need. */
const KEY_PAGES = 20;
/** The name of a direct conversation's room (a convention every Basis client follows). */
export const DM_NAME = 'dm';
/** Why a message sent before this user was in the room cannot be read. */
export const BEFORE_JOIN = 'sent before you joined';

/** The hybrid clock value (decimal string or number) as milliseconds since 1970. */
export function millis(time) {
  try {
    return Number(BigInt(String(time)) >> 16n);
  } catch (_) {
    return 0;
  }
}

function active(info) {
  return info.members.filter((m) => m.standing === 'joined' || m.standing === 'invited');
}

/** The other person of a direct conversation, when `info` is one `me` takes part in. */
export function dmPartner(info, me) {
  if (info.name !== DM_NAME || !info.encrypted) return null;
  if (info.standing !== 'joined' && info.standing !== 'invited') return null;
  const people = active(info).map((m) => m.user);
  if (people.length !== 2 || !people.includes(me)) return null;
  return people.find((u) => u !== me) || null;
}

/** One room as the page shows it. */
class Room {
  constructor(client, info, text) {
    this.client = client;
    this.id = info.room;
    this.info = info;
    this.infoText = text;
    this.raw = [];
    this.seen = new Set();
    this.older = undefined; // undefined: not loaded; null: the beginning was read
    this.lines = [];
    this.receipts = {};
    this.crypto = null;
    this.loading = false;
  }

  keys() {
    if (this.crypto) return this.crypto;
    const saved = store.roomKeys(this.id);
    try {
      this.crypto = saved
        ? basis.RoomCrypto.restore(
            this.client.user,
            this.id,
            saved.inbound ? unbase64(saved.inbound) : undefined,
            saved.outbound ? unbase64(saved.outbound) : undefined,
          )
        : new basis.RoomCrypto(this.id);
    } catch (_) {
      this.crypto = new basis.RoomCrypto(this.id);
    }
    return this.crypto;
  }

  saveKeys() {
    const c = this.keys();
    const inbound = c.pickleInbound(this.client.user);
    const outbound = c.pickleOutbound(this.client.user);
    store.setRoomKeys(this.id, {
      inbound: base64(inbound),
      outbound: outbound ? base64(outbound) : null,
    });
  }

  take(events) {
    let fresh = false;
    for (const e of events) {
      if (!this.seen.has(e.raw)) {
        this.seen.add(e.raw);
        this.raw.push(e.raw);
        fresh = true;
      }
    }
    return fresh;
  }

  rebuild() {
    const t = JSON.parse(this.keys().timeline(this.client.user, JSON.stringify(this.raw)));
    const me = this.client.user.userId;
    // Messages shown before this user was invited are unreadable by design.
    const first = t.lines.findIndex(
      (l) => (l.shown.type === 'membership' && l.shown.target === me) || (l.author === me && l.shown.type !== 'membership'),
    );
    if (first > 0) {
      for (const l of t.lines.slice(0, first)) {
        if (l.shown.type === 'unreadable') l.shown.reason = BEFORE_JOIN;
      }
    }
    this.lines = t.lines;
    this.receipts = t.receipts;
    this.saveKeys();
  }

  needsKeys() {
    return this.lines.some((l) => l.shown.type === 'unreadable' && l.shown.reason !== BEFORE_JOIN);
  }

  async open() {
    if (this.older !== undefined || this.loading) return;
    this.loading = true;
    try {
      const node = this.client.node;
      this.take(await node.state(this.id));
      const page = await node.history(this.id, null, PAGE);
      this.older = page.older || null;
      this.take(page.events);
      this.rebuild();
      for (let i = 0; i < KEY_PAGES && this.needsKeys() && this.older; i++) {
        await this.loadOlder(false);
      }
      this.rebuild();
    } finally {
      this.loading = false;
    }
  }

  /** Reads one older page; false at the beginning of the room. */
  async loadOlder(rebuild = true) {
    if (!this.older) return false;
    const page = await this.client.node.history(this.id, this.older, PAGE);
    this.older = page.older || null;
    this.take(page.events);
    if (rebuild) this.rebuild();
    return true;
  }

  /** After a lost connection: newest pages until they meet what was read. */
  async catchUp() {
    if (this.older === undefined) return;
    const node = this.client.node;
    let cursor = null;
    const fresh = await node.state(this.id);
    for (let i = 0; i < KEY_PAGES; i++) {
      const page = await node.history(this.id, cursor, PAGE);
      const met = page.events.some((e) => this.seen.has(e.raw));
      fresh.push(...page.events);
      cursor = page.older;
      if (met || !cursor) break;
    }
    if (this.take(fresh)) this.rebuild();
  }

  messageLines() {
    return this.lines.filter((l) => ['text', 'file', 'deleted', 'unreadable'].includes(l.shown.type));
  }
}

// ---- The outbox at rest. A message waits in the outbox until the node has it, for as long
// as the node is away; what it says (the draft, and the signed event once made, which in a
// room without end-to-end encryption holds the text) is kept sealed with the user's key
// (`User.sealKept`), so that this browser's storage does not show it without the passphrase.

/** An entry as kept: `kept` holds its draft and bytes, sealed. */
function keptForm(user, entry) {
  const { draft, bytes, kept, ...rest } = entry;
  // An entry that did not open stays as it was found.
  if (draft.type === 'unreadable') return { ...rest, kept };
  const plain = new TextEncoder().encode(JSON.stringify({ draft, bytes }));
  return { ...rest, kept: base64(user.sealKept(plain)) };
}

/** The entry as kept, opened; one that does not open is shown as not sent, and kept. */
function openKept(user, entry) {
  // Kept in the clear by an earlier version of the page: sealed at the next save.
  if (entry.kept === undefined) return entry;
  try {
    const { draft, bytes } = JSON.parse(new TextDecoder().decode(user.openKept(unbase64(entry.kept))));
    const { kept, ...rest } = entry;
    return { ...rest, draft, bytes };
  } catch (_) {
    return { ...entry, draft: { type: 'unreadable' }, bytes: null, state: 'failed', error: 'this browser kept it sealed, and it does not open with this key' };
  }
}

/** The signed-in client (see the file comment). */
export class Client {
  constructor(user) {
    this.user = user;
    this.node = new Node('');
    this.rooms = new Map();
    this.contacts = store.contacts();
    const kept = store.outbox();
    this.outbox = kept.map((e) => openKept(user, e));
    this.uploads = [];
    this.downloads = new Map();
    this.unread = store.unread();
    this.online = false;
    this.nodeStatus = null;
    this.openRoom = null;
    this.typing = new Map();
    this.presence = new Map();
    this.listeners = new Set();
    this.ws = null;
    this.retry = 1000;
    this.stopped = false;
    this.error = null;
    // Whether the node has this user's profile as this page last checked: a page that
    // started while the node was away publishes it once the node is back.
    this.published = false;
    // Entries an earlier version of the page kept in the clear are sealed now.
    if (kept.some((e) => e.kept === undefined)) this.saveOutbox();
  }

  subscribe(f) {
    this.listeners.add(f);
    return () => this.listeners.delete(f);
  }

  changed() {
    for (const f of this.listeners) f();
  }

  get me() {
    return this.user.userId;
  }

  /** Signs in, loads the rooms, publishes the profile when needed, starts the stream. */
  async start() {
    this.nodeStatus = await this.node.signIn(this.user);
    this.online = true;
    this.error = null;
    this.retry = 1000;
    await this.publishProfile();
    await this.refreshRooms();
    this.listen();
    this.flush();
    this.restoreUploads();
    this.changed();
  }

  stop() {
    this.stopped = true;
    // Kept uploads go on when the key is unlocked again, by the next client.
    for (const job of this.uploads) job.cancelled = true;
    clearInterval(this.presenceTimer);
    clearTimeout(this.joinPresence);
    if (this.ws) this.ws.close();
    this.node.signOut();
  }

  async publishProfile() {
    const wanted = store.displayName();
    let current = null;
    try {
      current = await this.node.user(this.me);
    } catch (e) {
      if (!(e instanceof ApiError && e.code === 'unknown_user')) throw e;
    }
    // A key brought from elsewhere keeps the name it already has.
    if (!wanted && current && current.name) store.setDisplayName(current.name);
    const keyOk = current && current.agreement_key === this.user.agreementKey;
    const nameOk = current && (!wanted || current.name === wanted);
    if (!(keyOk && nameOk)) {
      const name = wanted || (current && current.name) || '';
      await this.node.postEvent(this.user.profile(name));
    }
    this.published = true;
  }

  async setDisplayName(name) {
    store.setDisplayName(name);
    await this.node.postEvent(this.user.profile(name));
  }

  async refreshRooms() {
    const list = await this.node.rooms();
    for (const info of list) {
      const room = this.rooms.get(info.room);
      if (room) {
        room.info = info;
      } else {
        this.rooms.set(info.room, new Room(this, info, JSON.stringify(info)));
      }
    }
    this.changed();
  }

  /** Rooms to list: direct conversations superseded by another room of the pair are left out. */
  roomList() {
    const all = [...this.rooms.values()].filter((r) => ['joined', 'invited'].includes(r.info.standing));
    const firstDm = new Map();
    for (const r of all) {
      const p = dmPartner(r.info, this.me);
      if (p && (!firstDm.has(p) || r.id < firstDm.get(p))) firstDm.set(p, r.id);
    }
    return all
      .filter((r) => {
        const p = dmPartner(r.info, this.me);
        return !p || firstDm.get(p) === r.id;
      })
      .sort((a, b) => (b.info.latest_time > a.info.latest_time ? 1 : -1));
  }

  /** How a person is called: nickname, profile name with a short id, or the short id. */
  person(user, info) {
    if (user === this.me) return 'you';
    const nick = nickname(this.contacts, user);
    if (nick) return nick;
    const m = info && info.members.find((m) => m.user === user);
    const short = user.slice(0, 8);
    return m && m.name ? `${m.name} (${short})` : short;
  }

  roomName(room) {
    const p = dmPartner(room.info, this.me);
    return p ? this.person(p, room.info) : room.info.name;
  }

  async openRoomById(id) {
    const room = this.rooms.get(id);
    if (!room) return;
    this.openRoom = room;
    this.unread[id] = 0;
    store.setUnread(this.unread);
    this.changed();
    try {
      const fresh = await this.node.room(id);
      room.info = fresh.info;
      room.infoText = fresh.text;
      await room.open();
    } catch (e) {
      this.fail(e);
    }
    this.changed();
    this.markRead(room);
  }

  /** Sends a read receipt for the newest message of someone else, at most every 2 s. */
  markRead(room) {
    if (room.info.standing !== 'joined') return;
    const others = room.messageLines().filter((l) => l.author !== this.me);
    const newest = others[others.length - 1];
    if (!newest || room.lastReceipt === newest.id) return;
    room.lastReceipt = newest.id;
    clearTimeout(room.receiptTimer);
    room.receiptTimer = setTimeout(async () => {
      try {
        const { text } = await this.node.room(room.id);
        await this.node.postEvent(this.user.receipt(text, 'read', newest.id));
      } catch (e) {
        room.lastReceipt = null;
        console.warn('the read receipt was not sent:', e && e.message ? e.message : e);
      }
    }, 500);
  }

  listen() {
    if (this.stopped) return;
    this.ws = this.node.stream(
      (m) => this.onStream(m).catch((e) => this.streamFailed(e)),
      () => this.lost(),
    );
    this.ws.onopen = () => this.sendNotice({ type: 'presence', status: 'online' });
    // Presence reaches only people who share a room with this user at the time: say it again
    // now and then, and after joining a room.
    clearInterval(this.presenceTimer);
    this.presenceTimer = setInterval(() => this.sendNotice({ type: 'presence', status: 'online' }), 60000);
  }

  sendNotice(n) {
    if (this.ws && this.ws.readyState === 1) this.ws.send(JSON.stringify(n));
  }

  lost() {
    if (this.stopped) return;
    this.online = false;
    this.changed();
    setTimeout(() => this.reconnect(), this.retry);
    this.retry = Math.min(this.retry * 2, 15000);
  }

  async reconnect() {
    if (this.stopped) return;
    try {
      this.nodeStatus = await this.node.signIn(this.user);
      this.online = true;
      this.retry = 1000;
      // Without a profile others cannot seal room keys to this user.
      if (!this.published) await this.publishProfile();
      await this.refreshRooms();
      if (this.openRoom) await this.openRoom.catchUp();
      this.listen();
      this.flush();
      this.resumeUploads();
      this.restoreUploads();
    } catch (e) {
      this.online = false;
      setTimeout(() => this.reconnect(), this.retry);
      this.retry = Math.min(this.retry * 2, 15000);
    }
    this.changed();
  }

  /** Work started by the live stream failed: the node went away meanwhile (the reconnect
   * that follows reads the rooms again), or something the user should hear of. */
  streamFailed(e) {
    if (!(e instanceof Unreachable)) this.fail(e);
  }

  async onStream(m) {
    if (m.type === 'event') {
      const e = m.event;
      let room = this.rooms.get(e.room);
      if (!room) {
        await this.refreshRooms();
        room = this.rooms.get(e.room);
        if (!room) return;
      }
      let event = null;
      try {
        event = JSON.parse(basis.validateEvent(unbase64(e.raw)));
      } catch (_) {
        return;
      }
      if (event.body.type === 'membership' || event.body.type === 'create') {
        this.refreshRooms().catch((e) => this.streamFailed(e));
      }
      if (room === this.openRoom && room.older !== undefined) {
        if (room.take([e])) {
          room.rebuild();
          this.markRead(room);
        }
      } else if (room.older !== undefined) {
        room.take([e]);
        room.stale = true;
      }
      if (room !== this.openRoom && event.body.type === 'message' && event.author !== this.me) {
        this.unread[room.id] = (this.unread[room.id] || 0) + 1;
        store.setUnread(this.unread);
      }
      this.changed();
    } else if (m.type === 'notice') {
      const n = m.notice;
      if (n.kind === 'typing' && n.room) {
        const key = n.room + '/' + n.user;
        if (n.typing) this.typing.set(key, Date.now());
        else this.typing.delete(key);
      } else if (n.kind === 'presence') {
        this.presence.set(n.user, n.status);
      }
      this.changed();
    }
  }

  typingIn(room) {
    const now = Date.now();
    const who = [];
    for (const [key, at] of this.typing) {
      const [r, user] = key.split('/');
      if (r === room.id && now - at < 6000 && user !== this.me) who.push(this.person(user, room.info));
    }
    return who;
  }

  fail(e) {
    if (e instanceof Unreachable) {
      this.online = false;
      this.error = e.message;
    } else {
      this.error = e.message || String(e);
    }
    this.changed();
  }

  // ---- Sending: every message goes through the outbox, signed once, posted until taken.

  queue(room, draft) {
    const entry = {
      lid: `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`,
      room: room.id,
      draft,
      bytes: null,
      state: 'pending',
      error: null,
      created: Date.now(),
    };
    this.outbox.push(entry);
    if (!this.saveOutbox()) {
      this.error = 'this browser refused to keep the message (storage full or private mode)';
    }
    this.changed();
    this.flush();
    return entry;
  }

  pending(room) {
    return this.outbox.filter((e) => e.room === room.id);
  }

  /** Keeps the outbox in this browser, each entry sealed with the user's key; false when
   * the browser refused (storage full, private mode). */
  saveOutbox() {
    return store.setOutbox(this.outbox.map((e) => keptForm(this.user, e)));
  }

  discard(entry) {
    this.outbox = this.outbox.filter((e) => e.lid !== entry.lid);
    this.saveOutbox();
    this.changed();
  }

  draftOf(d) {
    switch (d.type) {
      case 'text':
        return basis.Draft.text(d.text);
      case 'edit':
        return basis.Draft.edit(d.target, d.text);
      case 'delete':
        return basis.Draft.deletion(d.target);
      case 'reaction':
        return basis.Draft.reaction(d.target, d.key);
      case 'file':
        return basis.Draft.load(unbase64(d.saved));
      case 'unreadable':
        throw new Error('this browser kept it sealed, and it does not open with this key');
      default:
        throw new Error('unknown draft');
    }
  }

  /** Signs the entry once (encrypting in an encrypted room) and keeps the bytes. */
  async seal(entry) {
    const room = this.rooms.get(entry.room);
    const { text, info } = await this.node.room(entry.room);
    if (info.standing !== 'joined') {
      throw new ApiError(403, 'not_member', info.standing === 'invited' ? 'join the room first' : 'you are not in this room');
    }
    let draft = this.draftOf(entry.draft);
    let roomText = text;
    if (info.encrypted) {
      const crypto = room.keys();
      const sealed = crypto.encrypt(this.user, text, draft);
      if (sealed.keyShareEvent) {
        try {
          await this.node.postEvent(sealed.keyShareEvent);
        } catch (e) {
          crypto.forgetOutbound();
          throw e;
        }
        room.take([{ raw: base64(sealed.keyShareEvent) }]);
        roomText = (await this.node.room(entry.room)).text;
      }
      room.saveKeys();
      draft = sealed.draft;
    }
    entry.bytes = base64(this.user.message(roomText, draft));
    this.saveOutbox();
  }

  /** Posts what the outbox holds, in order; stops at the first that cannot go now. */
  async flush() {
    if (this.flushing || !this.online) return;
    this.flushing = true;
    try {
      // The first entry still to send, read afresh each time: what is queued meanwhile (a
      // file message whose upload just ended) goes in this same run.
      for (let entry; (entry = this.outbox.find((e) => e.state !== 'failed')); ) {
        try {
          if (!entry.bytes) await this.seal(entry);
          await this.node.postEvent(unbase64(entry.bytes));
          const room = this.rooms.get(entry.room);
          if (room && room.older !== undefined && room.take([{ raw: entry.bytes }])) room.rebuild();
          this.outbox = this.outbox.filter((e) => e.lid !== entry.lid);
          this.saveOutbox();
        } catch (e) {
          if (e instanceof Unreachable) {
            this.online = false;
            break;
          }
          entry.state = 'failed';
          entry.error = e.message || String(e);
          this.saveOutbox();
        }
        this.changed();
      }
    } finally {
      this.flushing = false;
    }
    this.changed();
  }

  // ---- Files. A picked file is sealed in wasm in two passes over the File, one chunk in
  // memory at a time: the first pass only hashes (the chunk list must reach the node before
  // any chunk, and it needs every chunk's hash), the second seals again to send. Sealing is
  // deterministic for the file's key and a chunk's place, so the second pass gives the same
  // bytes. Keeping the first pass's ciphertext would save that work for small files but hold
  // the whole file in memory for large ones; sealing twice costs CPU (fast next to the
  // Wi-Fi) and lets a resumed upload reseal just the chunks the node is missing. Once every
  // chunk is on the node, the file message goes through the outbox like a text.

  /** Largest file the node takes, when its status says; 100 MiB otherwise. */
  fileLimit() {
    const s = this.nodeStatus || {};
    const limit = Number((s.files && (s.files.max_file_bytes || s.files.max_bytes)) || s.max_file_bytes);
    return limit > 0 ? limit : DEFAULT_FILE_LIMIT;
  }

  /** Starts sending `file` to the room; throws, before any upload, when it is too large. */
  attach(room, file) {
    const limit = this.fileLimit();
    if (file.size > limit) {
      throw new Error(`“${file.name || 'this file'}” is too large to send (${sizeText(file.size)}): files up to ${sizeText(limit)} can be sent`);
    }
    const job = {
      lid: `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`,
      room: room.id,
      file,
      name: file.name || 'file',
      type: file.type || 'application/octet-stream',
      size: file.size,
      phase: 'preparing',
      done: 0,
      error: null,
    };
    this.uploads.push(job);
    this.keep(job);
    this.changed();
    this.upload(job);
    return job;
  }

  /** Keeps the picked file in this browser until its message is in the outbox. */
  async keep(job) {
    const { lid, room, name, type, size, file } = job;
    if (!(await kept.keepUpload({ lid, user: this.me, room, name, type, size, file }))) {
      job.unkept = true;
      this.changed();
    } else if (!this.uploads.includes(job)) {
      // Sent or cancelled before the browser had stored it: not to be sent again.
      kept.dropUpload(lid);
    }
  }

  /** The uploads kept from before a reload (this user's) start again, once signed in (the
   * first sign-in, or the first after a start that found the node away). */
  async restoreUploads() {
    if (this.restoring) return;
    this.restoring = true;
    try {
      for (const k of await kept.uploads()) {
        if (k.user !== this.me || this.uploads.some((u) => u.lid === k.lid)) continue;
        const { lid, room, name, type, size, file } = k;
        const job = { lid, room, name, type, size, file, phase: 'preparing', done: 0, error: null };
        this.uploads.push(job);
        this.changed();
        this.upload(job);
      }
    } finally {
      this.restoring = false;
    }
  }

  uploadsIn(room) {
    return this.uploads.filter((u) => u.room === room.id);
  }

  cancelUpload(job) {
    job.cancelled = true;
    this.uploads = this.uploads.filter((u) => u !== job);
    kept.dropUpload(job.lid);
    if (job.sealer) job.sealer.free();
    job.sealer = null;
    this.changed();
  }

  /** Runs (or resumes) one upload to its end, a wait for the network, or a failure. */
  async upload(job) {
    if (job.running || job.cancelled) return;
    job.running = true;
    job.error = null;
    try {
      if (!job.sealer) {
        job.phase = 'preparing';
        job.preview = await thumbnail(job.file);
        const sealer = new basis.FileSealer(job.size);
        const size = sealer.chunkSize;
        for (let i = 0; i < sealer.chunkCount; i++) {
          if (job.cancelled) return;
          sealer.hashChunk(await readSlice(job.file, i * size, Math.min(job.size, (i + 1) * size)));
          job.done = Math.min(job.size, (i + 1) * size);
          this.changed();
        }
        sealer.finish();
        job.sealer = sealer;
        // The bar showed the first pass (encrypting); from here it shows what the node holds.
        job.done = 0;
      }
      const sealer = job.sealer;
      const address = sealer.address;
      job.retry = 0;
      job.phase = 'uploading';
      // What the node holds already: after a cut, only the rest is sent. The node names the
      // first 64 missing chunks at a time, so ask again until it has them all.
      const size = sealer.chunkSize;
      let info = null;
      try {
        info = await this.node.fileInfo(address);
      } catch (e) {
        if (!(e instanceof ApiError && e.status === 404)) throw e;
      }
      if (!info || info.state === 'absent') {
        info = await this.node.putFileList(address, job.size, size, sealer.listBytes());
        if (!info || !info.state) info = await this.node.fileInfo(address);
      }
      for (let round = 0; info.state !== 'complete'; round++) {
        const todo = missingChunks(info, sealer.chunkCount);
        if (!todo.length || round > sealer.chunkCount) throw new Error('the node does not take the file’s chunks');
        job.done = Math.min(job.size, (info.held || 0) * size);
        this.changed();
        for (const i of todo) {
          if (job.cancelled) return;
          const end = Math.min(job.size, (i + 1) * size);
          const cipher = sealer.sealChunk(i, await readSlice(job.file, i * size, end));
          await this.node.putChunk(address, i, cipher);
          job.done = Math.min(job.size, job.done + end - i * size);
          this.changed();
        }
        info = await this.node.fileInfo(address);
      }
      if (job.cancelled) return;
      const p = job.preview;
      const draft = sealer.draft(job.name, job.type, p ? p.type : undefined, p ? p.bytes : undefined);
      const saved = base64(draft.save());
      draft.free();
      this.cancelUpload(job);
      this.queue(this.rooms.get(job.room) || { id: job.room }, { type: 'file', name: job.name, size: job.size, saved });
    } catch (e) {
      if (e instanceof Unreachable) {
        // The Wi-Fi dropped or the node restarts: try again in a while (and when the stream
        // reconnects); the node keeps the chunks it has, so only the rest goes.
        job.phase = 'waiting';
        job.retry = Math.min((job.retry || 1000) * 2, 15000);
        setTimeout(() => job.phase === 'waiting' && this.upload(job), job.retry);
      } else {
        job.phase = 'failed';
        job.error = e.message || String(e);
      }
      this.changed();
    } finally {
      job.running = false;
    }
  }

  /** After the connection is back: uploads that waited for it go on. */
  resumeUploads() {
    for (const job of this.uploads) if (job.phase === 'waiting') this.upload(job);
  }

  /** Downloads and opens the file of `line` chunk by chunk; its object URL is kept in
   * `downloads` under the line's id (with progress while it runs). */
  async download(room, line) {
    const known = this.downloads.get(line.id);
    if (known && (known.url || known.running)) return known;
    const a = line.attachment;
    const d = { running: true, done: 0, total: Number(a.size), url: null, error: null, state: 'downloading' };
    this.downloads.set(line.id, d);
    this.changed();
    let opener = null;
    try {
      opener = room.keys().fileOpener(line.id);
      const parts = [];
      let waited = 0;
      for (let i = 0; i < opener.chunkCount; ) {
        let cipher;
        try {
          cipher = await this.node.chunk(opener.address, i);
        } catch (e) {
          if (!(e instanceof ApiError && (e.code === 'not_held' || e.code === 'no_list' || e.status === 404)) || waited > 300) throw e;
          // Not on this node yet: asking for the file starts fetching it from the mesh.
          const info = await this.node.fileInfo(opener.address);
          d.state = info.state === 'fetching' ? 'fetching' : 'waiting';
          d.stalled = info.stalled === 'no_peer' ? 'no linked node has it yet' : info.stalled ? info.stalled.replace('_', ' ') : null;
          if (info.chunks) d.fetched = Math.round((100 * (info.held || 0)) / info.chunks);
          this.changed();
          waited++;
          await sleep(1000);
          continue;
        }
        parts.push(opener.open(i, cipher));
        d.state = 'downloading';
        d.done += parts[parts.length - 1].length;
        this.changed();
        i++;
      }
      // Only images and audio are shown in the page (by <img> and <audio>, which never run
      // what they load); anything else is saved as opaque bytes, never opened as a page.
      const kind = opener.mediaType.split('/')[0];
      const type = kind === 'image' || kind === 'audio' ? opener.mediaType : 'application/octet-stream';
      d.url = URL.createObjectURL(new Blob(parts, { type }));
      d.name = opener.safeName;
    } catch (e) {
      d.error = e instanceof Unreachable ? 'the node cannot be reached: try again when the network is back' : e.message || String(e);
    } finally {
      if (opener) opener.free();
      d.running = false;
      this.changed();
    }
    return d;
  }

  // ---- Rooms and people.

  async createRoom(name, encrypted = true) {
    const taken = this.roomList().some((r) => r.info.name === name);
    if (taken) throw new Error(`you already have a room named "${name}": choose another name`);
    if (name === DM_NAME) throw new Error(`"${DM_NAME}" is kept for direct conversations`);
    const posted = await this.node.postEvent(this.user.createRoom(name, encrypted), '/v1/rooms');
    await this.refreshRooms();
    return posted.room;
  }

  async membership(roomId, action, target) {
    const { text } = await this.node.room(roomId);
    const bytes = this.user.membership(text, action, target || this.me);
    await this.node.postEvent(bytes, `/v1/rooms/${roomId}/members`);
    if (action === 'join') {
      // Other nodes pass a presence only to people who share a room with this user, and the
      // join may reach them after the notice does: say it again once the join has spread.
      this.sendNotice({ type: 'presence', status: 'online' });
      clearTimeout(this.joinPresence);
      this.joinPresence = setTimeout(() => this.sendNotice({ type: 'presence', status: 'online' }), 5000);
    }
    await this.refreshRooms();
    const room = this.rooms.get(roomId);
    if (room) {
      const fresh = await this.node.room(roomId);
      room.info = fresh.info;
      room.infoText = fresh.text;
      if (room.older !== undefined) await room.catchUp();
    }
    this.changed();
  }

  /** The direct conversation with `user`: the existing one (joined first if only invited), or a new one. */
  async directRoom(user) {
    if (user === this.me) throw new Error('that is your own key: a direct conversation is with someone else');
    await this.refreshRooms();
    const rooms = [...this.rooms.values()]
      .filter((r) => dmPartner(r.info, this.me) === user)
      .sort((a, b) => (a.id < b.id ? -1 : 1));
    if (rooms.length) {
      if (rooms[0].info.standing === 'invited') await this.membership(rooms[0].id, 'join');
      return rooms[0].id;
    }
    const posted = await this.node.postEvent(this.user.createRoom(DM_NAME, true), '/v1/rooms');
    await this.membership(posted.room, 'invite', user);
    return posted.room;
  }

  addContact(name, user) {
    name = name.trim();
    if (!/^[^\s]{1,64}$/u.test(name)) throw new Error('a nickname is 1 to 64 characters without spaces');
    if (this.contacts.some((c) => c.name === name)) throw new Error(`you already have a contact named ${name}`);
    if (this.contacts.some((c) => c.user === user)) throw new Error('that person is already a contact');
    if (user === this.me) throw new Error('that is your own key');
    this.contacts = [...this.contacts, { name, user }];
    store.setContacts(this.contacts);
    this.changed();
  }

  removeContact(name) {
    this.contacts = this.contacts.filter((c) => c.name !== name);
    store.setContacts(this.contacts);
    this.changed();
  }
}

/** Reads a shared user key: `basis:user:<64 hex>` or the 64 hex characters alone. */
export function parseUserKey(text) {
  const t = text.trim().replace(/^basis:user:/, '');
  if (!/^[0-9a-fA-F]{64}$/.test(t)) {
    throw new Error('not a Basis user key: expected basis:user: followed by 64 hex characters');
  }
  return t.toLowerCase();
}

/** The text a user shares so others can add them. */
export function shareText(user) {
  return `basis:user:${user}`;
}
