// One room: its messages as they are now (edits, deletes, reactions applied by the wasm
// timeline), older ones loaded by scrolling up, what is still in the outbox, typing, read
// receipts, and the composer.

import { useEffect, useRef, useState } from 'preact/hooks';
import { BEFORE_JOIN, dmPartner, millis } from '../client.js';
import { kindOf, sizeText } from '../files.js';
import { html, Notice, fullTime, saveUrl, when } from '../ui.js';

const REACTIONS = ['👍', '❤️', '😂', '😮', '🙏', '✅'];

function Line({ client, room, line, selected, select, startEdit }) {
  const me = client.me;
  const who = client.person(line.author, room.info);
  const ms = millis(line.time);
  const s = line.shown;
  if (s.type === 'created') {
    // A direct conversation's room is named `dm` by convention: not a name to show.
    if (dmPartner(room.info, me)) return html`<li class="event">${who} started this direct conversation</li>`;
    return html`<li class="event">${who} created the room “${s.name}”</li>`;
  }
  if (s.type === 'membership') {
    const target = client.person(s.target, room.info);
    const text = s.action === 'joined' || s.action === 'left' ? `${target} ${s.action}` : `${who} ${s.action} ${target}`;
    return html`<li class="event">${text} · <time title=${fullTime(ms)}>${when(ms)}</time></li>`;
  }
  let body;
  if (s.type === 'text') {
    body = html`<p class="text">${s.text}${s.edited ? html` <small class="edited">(edited)</small>` : ''}</p>`;
  } else if (s.type === 'deleted') {
    body = html`<p class="text gone">message deleted</p>`;
  } else if (s.type === 'file') {
    body = line.attachment ? '' : html`<p class="text">${Icon('clip')} ${s.file.name} (${sizeText(s.file.size)})</p>`;
  } else {
    const why = s.reason === BEFORE_JOIN ? 'sent before you joined' : `cannot be read yet: ${s.reason}`;
    body = html`<p class="text gone">🔒 ${why}</p>`;
  }
  const mine = line.author === me;
  const reactions = Object.entries(line.reactions || {});
  // What this user may still change comes from the timeline's own rules (wasm).
  return html`
    <li class=${'msg' + (mine ? ' mine' : '') + (selected ? ' selected' : '') + (s.type === 'file' && line.attachment ? ' has-file' : '')}>
      <button class="msg-body" onClick=${() => select(selected ? null : line.id)} aria-expanded=${selected}
        aria-label=${`${who}, ${when(ms)}: ${s.type === 'text' ? s.text : s.type === 'file' ? s.file.name : s.type}. Actions`}>
        <span class="who">${who}</span>
        ${body}
        <time title=${fullTime(ms)}>${when(ms)}</time>
      </button>
      ${s.type === 'file' && line.attachment ? html`<${FileView} client=${client} room=${room} line=${line} />` : ''}
      ${reactions.length
        ? html`<p class="reactions">${reactions.map(([k, users]) => html`<span title=${users.map((u) => client.person(u, room.info)).join(', ')}>${k} ${users.length}</span>`)}</p>`
        : ''}
      ${selected && (s.type === 'text' || s.type === 'file')
        ? html`<div class="actions" role="group" aria-label="Message actions">
            ${REACTIONS.map((k) => html`<button onClick=${() => { client.queue(room, { type: 'reaction', target: line.id, key: k }); select(null); }} aria-label=${'React ' + k}>${k}</button>`)}
            ${line.may_edit ? html`<button onClick=${() => startEdit(line)}>Edit</button>` : ''}
            ${line.may_delete ? html`<button onClick=${() => { if (confirm('Delete this message for everyone?')) client.queue(room, { type: 'delete', target: line.id }); select(null); }}>Delete</button>` : ''}
          </div>`
        : ''}
    </li>`;
}

// Line icons drawn here rather than emoji, which a machine without an emoji font shows as
// empty boxes.
const PATHS = {
  clip: 'M16 7l-7.5 7.5a2 2 0 0 0 2.8 2.8L19 9.6a4 4 0 0 0-5.7-5.7l-7.8 7.8a6 6 0 0 0 8.5 8.5L20 14',
  camera: 'M4 8h3l2-3h6l2 3h3v11H4zM12 16.5a3.5 3.5 0 1 0 0-7 3.5 3.5 0 0 0 0 7z',
  mic: 'M12 3a3 3 0 0 0-3 3v6a3 3 0 0 0 6 0V6a3 3 0 0 0-3-3zM6 11a6 6 0 0 0 12 0M12 17v4M9 21h6',
  image: 'M4 5h16v14H4zM4 16l5-5 4 4 3-3 4 4M15 9.5a1.5 1.5 0 1 0 0-.01',
  video: 'M4 6h12v12H4zM16 10l4-2v8l-4-2',
  file: 'M6 3h8l4 4v14H6zM14 3v4h4',
};
const Icon = (name) => html`<svg class="glyph" viewBox="0 0 24 24" width="22" height="22" aria-hidden="true" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round" stroke-linejoin="round"><path d=${PATHS[name]} /></svg>`;
const ICONS = { image: Icon('image'), audio: Icon('mic'), video: Icon('video'), file: Icon('file') };

/** A file in the timeline: the thumbnail or a bubble with icon, name and size; tapping it
 * downloads, decrypts and shows it (images full size, audio in a player, others saved). */
function FileView({ client, room, line }) {
  const a = line.attachment;
  const kind = kindOf(a.media_type);
  const d = client.downloads.get(line.id);
  const get = async () => {
    const got = await client.download(room, line);
    if (got.url && kind !== 'image' && kind !== 'audio') saveUrl(got.url, got.name);
  };
  const label = `${kind === 'audio' ? 'Voice note or audio' : kind === 'image' ? 'Photo' : 'File'} ${a.name}, ${sizeText(a.size)}`;
  let opened = '';
  if (d && d.url) {
    if (kind === 'image') opened = html`<img class="full" src=${d.url} alt=${a.name} />`;
    else if (kind === 'audio') opened = html`<audio controls src=${d.url} aria-label=${'Play ' + a.name}></audio>`;
    opened = html`${opened}<a class="save" href=${d.url} download=${d.name}>Save ${d.name}</a>`;
  }
  const thumb = a.preview && a.preview.type === 'image' && !(d && d.url && kind === 'image')
    ? html`<img class="thumb" src=${`data:${a.preview.media_type};base64,${a.preview.data}`} alt="" />`
    : '';
  return html`<div class=${'file ' + kind}>
    ${d && d.url
      ? ''
      : html`<button class="file-open" onClick=${get} disabled=${d && d.running} aria-label=${`${label}. ${kind === 'image' ? 'Open' : kind === 'audio' ? 'Play' : 'Download'}`}>
          ${thumb || html`<span class="icon" aria-hidden="true">${ICONS[kind]}</span>`}
          <span class="name">${a.name}</span>
          <small>${sizeText(a.size)}</small>
        </button>`}
    ${d && d.running
      ? html`<label class="progress">${d.state === 'fetching' ? `fetching from the mesh: ${d.fetched || 0} %${d.stalled ? ` (${d.stalled})` : ''}` : d.state === 'waiting' ? 'not on this node yet, asking…' : 'downloading'}
          <progress max=${d.total || 1} value=${d.done}></progress></label>`
      : ''}
    ${d && d.error ? html`<p class="state error" role="alert">Not opened: ${d.error}
        <button class="link" onClick=${() => { client.downloads.delete(line.id); get(); }}>Retry</button></p>` : ''}
    ${opened}
  </div>`;
}

/** A file on its way to the node: sealing, then chunks with progress. */
function Upload({ client, job }) {
  const what = job.phase === 'preparing' ? 'encrypting' : job.phase === 'uploading' ? 'sending' : job.phase === 'waiting' ? 'waiting for the network; it goes on where it stopped' : 'not sent';
  return html`<li class="msg mine pending">
    <div class="msg-body">
      <p class="text">${ICONS[kindOf(job.type)]} ${job.name} <small>(${sizeText(job.size)})</small></p>
      <label class="progress">${what}
        <progress max=${job.size || 1} value=${job.done}></progress></label>
      ${job.unkept ? html`<p class="state">this browser cannot keep the file: stay on this page until it is sent</p>` : ''}
      ${job.phase === 'failed' ? html`<p class="state error" role="alert">${job.error}
          <button class="link" onClick=${() => client.upload(job)}>Retry</button></p>` : ''}
      <button class="link" onClick=${() => client.cancelUpload(job)}>Cancel</button>
    </div>
  </li>`;
}

function Pending({ client, entry }) {
  const d = entry.draft;
  const what = d.type === 'text' ? d.text : d.type === 'edit' ? `edit: ${d.text}` : d.type === 'delete' ? 'delete a message' : d.type === 'file' ? html`${Icon('clip')} ${d.name} (${sizeText(d.size)})` : d.type === 'unreadable' ? 'a message this browser kept that cannot be read' : `reaction ${d.key}`;
  return html`<li class="msg mine pending">
    <div class="msg-body">
      <p class="text">${what}</p>
      ${entry.state === 'failed'
        ? html`<p class="state error" role="alert">Not sent: ${entry.error}
            <button class="link" onClick=${() => { entry.state = 'pending'; entry.error = null; client.flush(); }}>Retry</button>
            <button class="link" onClick=${() => client.discard(entry)}>Discard</button></p>`
        : html`<p class="state">${client.online ? 'sending…' : 'waiting for the network; it is kept and sent when the node is back'}</p>`}
    </div>
  </li>`;
}

/** Who read up to the user's newest message. */
function readers(client, room) {
  const mine = room.messageLines().filter((l) => l.author === client.me);
  const last = mine[mine.length - 1];
  if (!last) return [];
  const index = new Map(room.lines.map((l, i) => [l.id, i]));
  const at = index.get(last.id);
  return Object.entries(room.receipts)
    .filter(([u, r]) => u !== client.me && r.read && index.get(r.read) >= at)
    .map(([u]) => client.person(u, room.info));
}

export function RoomView({ client, room, go }) {
  const [text, setText] = useState('');
  const [selected, select] = useState(null);
  const [editing, setEditing] = useState(null);
  const [error, setError] = useState('');
  const [members, showMembers] = useState(false);
  const list = useRef(null);
  const atBottom = useRef(true);
  const lastTyping = useRef(0);

  const lines = room.lines;
  const pending = client.pending(room);
  const uploads = client.uploadsIn(room);
  const attachInput = useRef(null);
  const cameraInput = useRef(null);
  const voiceInput = useRef(null);
  useEffect(() => {
    const el = list.current;
    if (el && atBottom.current) el.scrollTop = el.scrollHeight;
  }, [lines.length, pending.length, uploads.length, room.id]);

  const attach = (e) => {
    setError('');
    const files = [...e.target.files];
    e.target.value = '';
    try {
      for (const f of files) client.attach(room, f);
      atBottom.current = true;
    } catch (err) {
      setError(err.message || String(err));
    }
  };

  const onScroll = async (e) => {
    const el = e.target;
    atBottom.current = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
    if (el.scrollTop < 60 && room.older && !room.busyOlder) {
      room.busyOlder = true;
      const before = el.scrollHeight;
      try {
        await room.loadOlder();
        client.changed();
        requestAnimationFrame(() => {
          el.scrollTop = el.scrollHeight - before + el.scrollTop;
        });
      } catch (err) {
        client.fail(err);
      } finally {
        room.busyOlder = false;
      }
    }
  };

  const send = (e) => {
    e.preventDefault();
    const t = text.trim();
    if (!t) return;
    if (editing) {
      client.queue(room, { type: 'edit', target: editing.id, text: t });
      setEditing(null);
    } else {
      client.queue(room, { type: 'text', text: t });
    }
    setText('');
    atBottom.current = true;
    lastTyping.current = 0;
    client.sendNotice({ type: 'typing', room: room.id, typing: false });
  };

  const onInput = (e) => {
    setText(e.target.value);
    const now = Date.now();
    if (now - lastTyping.current > 3000) {
      lastTyping.current = now;
      client.sendNotice({ type: 'typing', room: room.id, typing: true });
    }
  };

  const onKey = (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) send(e);
    if (e.key === 'Escape' && editing) {
      setEditing(null);
      setText('');
    }
  };

  const act = (work) => async () => {
    setError('');
    try {
      await work();
    } catch (err) {
      setError(err.message || String(err));
    }
  };

  const invited = room.info.standing === 'invited';
  const direct = dmPartner(room.info, client.me);
  const typing = client.typingIn(room);
  const read = readers(client, room);
  const joinedCount = room.info.members.filter((m) => m.standing === 'joined').length;

  return html`
    <section class="room" aria-label=${'Conversation ' + client.roomName(room)}>
      <div class="bar">
        <a class="back" href="#/rooms" aria-label="Back to chats">‹</a>
        <h2>${client.roomName(room)}${direct && client.presence.get(direct) ? html` <small class="presence">${client.presence.get(direct)}</small>` : ''}</h2>
        <button class="small" onClick=${() => showMembers(!members)} aria-expanded=${members}>${joinedCount} ${joinedCount === 1 ? 'member' : 'members'}</button>
      </div>
      ${members ? html`<${Members} client=${client} room=${room} direct=${direct} act=${act} go=${go} />` : ''}
      <${Notice} kind="error">${error}<//>
      <ol class="messages" ref=${list} onScroll=${onScroll} aria-live="polite" aria-relevant="additions">
        ${room.older ? html`<li class="event">scroll up for older messages</li>` : room.older === null ? html`<li class="event">${direct ? 'the beginning of the conversation' : 'the beginning of the room'}</li>` : html`<li class="event">loading…</li>`}
        ${lines.map((l) => html`<${Line} key=${l.id} client=${client} room=${room} line=${l} selected=${selected === l.id} select=${select}
          startEdit=${(line) => { setEditing(line); setText(line.shown.text); select(null); }} />`)}
        ${uploads.map((u) => html`<${Upload} key=${u.lid} client=${client} job=${u} />`)}
        ${pending.map((p) => html`<${Pending} key=${p.lid} client=${client} entry=${p} />`)}
      </ol>
      ${read.length ? html`<p class="receipts">✓ read by ${read.join(', ')}</p>` : ''}
      ${typing.length ? html`<p class="typing" aria-live="polite">${typing.join(', ')} ${typing.length === 1 ? 'is' : 'are'} typing…</p>` : ''}
      ${invited
        ? html`<div class="invite">
            <p>${direct ? `${client.roomName(room)} wrote to you directly.` : 'You are invited to this room.'}</p>
            <button class="primary" onClick=${act(() => client.membership(room.id, 'join'))}>Join</button>
            <button onClick=${act(async () => { await client.membership(room.id, 'leave'); go('#/rooms'); })}>Decline</button>
          </div>`
        : room.info.standing !== 'joined'
          ? html`<p class="notice">You ${room.info.standing} this room; a member can invite you again.</p>`
          : html`<form class="composer" onSubmit=${send}>
              ${editing ? html`<p class="editing">Editing your message <button type="button" class="link" onClick=${() => { setEditing(null); setText(''); }}>cancel</button></p>` : ''}
              ${editing
                ? ''
                : html`<div class="attach" role="group" aria-label="Send a file">
                    <button type="button" class="icon" onClick=${() => attachInput.current.click()} aria-label="Attach a photo or file" title="Attach a photo or file">${Icon('clip')}</button>
                    <button type="button" class="icon" onClick=${() => cameraInput.current.click()} aria-label="Take a photo" title="Take a photo">${Icon('camera')}</button>
                    <button type="button" class="icon" onClick=${() => voiceInput.current.click()} aria-label="Record a voice note" title="Record a voice note">${Icon('mic')}</button>
                    <input type="file" hidden multiple ref=${attachInput} onChange=${attach} data-input="attach" />
                    <input type="file" hidden accept="image/*" capture="environment" ref=${cameraInput} onChange=${attach} data-input="camera" />
                    <input type="file" hidden accept="audio/*" capture ref=${voiceInput} onChange=${attach} data-input="voice" />
                  </div>`}
              <label class="sr-only" for="compose">Message</label>
              <textarea id="compose" rows="1" value=${text} onInput=${onInput} onKeyDown=${onKey} placeholder=${editing ? 'New text' : 'Message'} maxlength="60000"></textarea>
              <button class="primary" aria-label=${editing ? 'Save the edit' : 'Send'}>${editing ? 'Save' : 'Send'}</button>
            </form>`}
    </section>`;
}

function Members({ client, room, direct, act, go }) {
  const [who, setWho] = useState('');
  const mine = room.info.standing === 'joined';
  return html`<div class="members">
    <ul>
      ${room.info.members.map((m) => html`<li key=${m.user}>
        <span>${client.person(m.user, room.info)}</span> <small>${m.standing}${client.presence.get(m.user) ? `, ${client.presence.get(m.user)}` : ''}</small>
        ${mine && !direct && m.user !== client.me && (m.standing === 'joined' || m.standing === 'invited')
          ? html`<button class="link" onClick=${act(() => client.membership(room.id, 'remove', m.user))} aria-label=${'Remove ' + client.person(m.user, room.info)}>remove</button>`
          : ''}
      </li>`)}
    </ul>
    ${mine && !direct
      ? html`<form onSubmit=${(e) => { e.preventDefault(); const c = client.contacts.find((c) => c.name === who); if (c) act(() => client.membership(room.id, 'invite', c.user))(); setWho(''); }}>
          <label>Invite a contact
            <select value=${who} onChange=${(e) => setWho(e.target.value)}>
              <option value="">choose…</option>
              ${client.contacts.map((c) => html`<option value=${c.name}>${c.name}</option>`)}
            </select>
          </label>
          <button disabled=${!who}>Invite</button>
        </form>`
      : ''}
    ${mine ? html`<button onClick=${act(async () => { await client.membership(room.id, 'leave'); go('#/rooms'); })}>Leave this ${direct ? 'conversation' : 'room'}</button>` : ''}
  </div>`;
}
