// The Basis web client: served by the node at `/`, runs the protocol through the wasm module,
// works on plain HTTP (no service worker, no WebCrypto needed). Routes are in the URL hash:
// #/rooms, #/room/<id>, #/new, #/contacts, #/node, #/me.

import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { Client } from './client.js';
import { store } from './store.js';
import { loadWasm } from './wasm.js';
import { html, Notice } from './ui.js';
import { NewRoom, RoomList } from './views/rooms.js';
import { RoomView } from './views/room.js';
import { Contacts, Me } from './views/people.js';
import { NodePage } from './views/node.js';
import { Unlock, Welcome } from './views/welcome.js';

function useHash() {
  const [hash, setHash] = useState(location.hash || '#/rooms');
  useEffect(() => {
    const on = () => setHash(location.hash || '#/rooms');
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return hash;
}

function go(hash) {
  location.hash = hash;
}

function Shell({ client, lock }) {
  const [, tick] = useState(0);
  useEffect(() => client.subscribe(() => tick((n) => n + 1)), [client]);
  useEffect(() => {
    // Typing notices expire by themselves: redraw now and then.
    const t = setInterval(() => tick((n) => n + 1), 3000);
    return () => clearInterval(t);
  }, []);
  const hash = useHash();
  const [, page, arg] = hash.split('/');
  const room = page === 'room' ? client.rooms.get(arg) : null;
  useEffect(() => {
    if (page === 'room' && arg && client.openRoom !== client.rooms.get(arg)) client.openRoomById(arg);
    if (page !== 'room') client.openRoom = null;
  }, [hash, client.rooms.size]);
  const wide = page !== 'room' ? 'show-list' : 'show-room';
  let main;
  if (page === 'room') {
    main = room ? html`<${RoomView} client=${client} room=${room} go=${go} />` : html`<p class="empty">Loading the room…</p>`;
  } else if (page === 'new') {
    main = html`<${NewRoom} client=${client} go=${go} />`;
  } else if (page === 'contacts') {
    main = html`<${Contacts} client=${client} />`;
  } else if (page === 'node') {
    main = html`<${NodePage} client=${client} />`;
  } else if (page === 'me') {
    main = html`<${Me} client=${client} lock=${lock} />`;
  } else {
    main = null;
  }
  const tab = (href, label, on) => html`<a href=${href} class=${on ? 'on' : ''} aria-current=${on ? 'page' : undefined}>${label}</a>`;
  return html`
    <div class=${'shell ' + wide + (main ? ' has-main' : '')}>
      <header>
        <span class="brand">Basis</span>
        <span class=${'status ' + (client.online ? 'online' : 'offline')} role="status">
          ${client.online ? `linked to ${client.nodeStatus ? client.nodeStatus.name : 'the node'}` : 'offline — messages are kept and sent later'}
        </span>
      </header>
      ${client.error ? html`<${Notice} kind="error">${client.error} <button class="link" onClick=${() => { client.error = null; client.changed(); }}>dismiss</button><//>` : ''}
      <div class="panes">
        <div class="pane list-pane"><${RoomList} client=${client} go=${go} /></div>
        <div class="pane main-pane">${main || html`<p class="empty hint">Choose a conversation.</p>`}</div>
      </div>
      <nav aria-label="Sections">
        ${tab('#/rooms', 'Chats', page === 'rooms' || page === 'room' || page === 'new' || !page)}
        ${tab('#/contacts', 'Contacts', page === 'contacts')}
        ${tab('#/node', 'Node', page === 'node')}
        ${tab('#/me', 'You', page === 'me')}
      </nav>
    </div>`;
}

function App() {
  const [phase, setPhase] = useState('loading');
  const [client, setClient] = useState(null);
  const [error, setError] = useState('');
  useEffect(() => {
    document.documentElement.dataset.theme = store.theme();
    loadWasm()
      .then(() => setPhase(store.keyFile() ? 'unlock' : 'welcome'))
      .catch((e) => setError(`this browser cannot run the Basis client (${e.message || e})`));
  }, []);
  const opened = async (user) => {
    const c = new Client(user);
    setClient(c);
    setPhase('ready');
    try {
      await c.start();
    } catch (e) {
      c.fail(e);
      if (!c.online) c.lost();
    }
  };
  const lock = () => {
    if (client) client.stop();
    setClient(null);
    setPhase('unlock');
  };
  const forget = () => {
    const unsent = store.outbox().length;
    const also = unsent === 1 ? ' The message it has not sent yet goes with it.' : unsent > 1 ? ` The ${unsent} messages it has not sent yet go with it.` : '';
    if (confirm(`Remove the key kept in this browser, with its contacts? Without an exported copy the key is gone for good.${also}`)) {
      store.forgetKeyFile();
      setPhase('welcome');
    }
  };
  if (error) return html`<main class="welcome"><h1>Basis</h1><${Notice} kind="error">${error}<//></main>`;
  if (phase === 'loading') return html`<main class="welcome"><h1>Basis</h1><p role="status">Loading…</p></main>`;
  if (phase === 'welcome') return html`<${Welcome} done=${opened} />`;
  if (phase === 'unlock') return html`<${Unlock} done=${opened} forget=${forget} />`;
  return html`<${Shell} client=${client} lock=${lock} />`;
}

render(html`<${App} />`, document.getElementById('app'));
