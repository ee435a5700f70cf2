// The list of rooms and direct conversations, with unread counts, and making new ones.

import { useState } from 'preact/hooks';
import { dmPartner, parseUserKey } from '../client.js';
import { html, Notice, when } from '../ui.js';
import { millis } from '../client.js';

export function RoomList({ client, go }) {
  const rooms = client.roomList();
  return html`
    <section class="list" aria-label="Your rooms">
      <div class="bar">
        <h2>Chats</h2>
        <a class="button" href="#/new">New</a>
      </div>
      ${rooms.length === 0
        ? html`<p class="empty">No rooms yet. Make one with <a href="#/new">New</a>, or wait for an invitation.</p>`
        : html`<ul class="rooms">
            ${rooms.map((r) => {
              const unread = client.unread[r.id] || 0;
              const direct = dmPartner(r.info, client.me);
              const invited = r.info.standing === 'invited';
              const label = `${client.roomName(r)}${direct ? ', direct conversation' : ''}${invited ? ', invitation' : ''}${unread ? `, ${unread} unread` : ''}`;
              return html`<li key=${r.id}>
                <a href=${'#/room/' + r.id} class=${client.openRoom === r ? 'current' : ''} aria-label=${label}>
                  <span class="avatar" aria-hidden="true">${(client.roomName(r)[0] || '?').toUpperCase()}</span>
                  <span class="name">${client.roomName(r)}${direct ? html` <small>direct</small>` : ''}</span>
                  <span class="meta">${invited ? html`<em>invited</em>` : r.info.latest_time ? when(millis(r.info.latest_time)) : ''}</span>
                  ${unread ? html`<span class="badge" aria-hidden="true">${unread}</span>` : ''}
                </a>
              </li>`;
            })}
          </ul>`}
    </section>`;
}

/** New room, or a direct conversation with a contact or a pasted key. */
export function NewRoom({ client, go }) {
  const [name, setName] = useState('');
  const [plain, setPlain] = useState(false);
  const [who, setWho] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const run = (work) => async (e) => {
    e.preventDefault();
    setError('');
    setBusy(true);
    try {
      const id = await work();
      go('#/room/' + id);
    } catch (err) {
      setError(err.message || String(err));
    } finally {
      setBusy(false);
    }
  };
  const createRoom = run(() => {
    if (!name.trim()) throw new Error('give the room a name');
    return client.createRoom(name.trim(), !plain);
  });
  const startDm = run(() => {
    const contact = client.contacts.find((c) => c.name === who);
    const user = contact ? contact.user : parseUserKey(who);
    return client.directRoom(user);
  });
  return html`
    <section class="form-page" aria-label="New conversation">
      <div class="bar"><a class="back" href="#/rooms" aria-label="Back to chats">‹</a><h2>New</h2></div>
      <form onSubmit=${startDm}>
        <h3>Direct conversation</h3>
        <label>With
          <input list="contact-names" value=${who} onInput=${(e) => setWho(e.target.value)} placeholder="a contact's name or a basis:user: key" />
        </label>
        <datalist id="contact-names">${client.contacts.map((c) => html`<option value=${c.name} />`)}</datalist>
        <button class="primary" disabled=${busy || !who.trim()}>Start</button>
      </form>
      <form onSubmit=${createRoom}>
        <h3>Room</h3>
        <label>Name<input value=${name} onInput=${(e) => setName(e.target.value)} maxlength="64" /></label>
        <label class="check"><input type="checkbox" checked=${plain} onChange=${(e) => setPlain(e.target.checked)} /> Without end-to-end encryption (the nodes can read it)</label>
        <button class="primary" disabled=${busy || !name.trim()}>Create</button>
      </form>
      <${Notice} kind="error">${error}<//>
    </section>`;
}
