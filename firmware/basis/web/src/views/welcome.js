// First use on this device: make a user key or bring one (text or file from `basis user
// export`); later visits: unlock the key kept here with its passphrase.

import { useState } from 'preact/hooks';
import { store } from '../store.js';
import { basis } from '../wasm.js';
import { html, Notice } from '../ui.js';

/** Shortest passphrase taken for a new key (as the command-line client requires). */
export const MIN_PASSPHRASE = 8;

function busyWhile(setBusy, setError, work) {
  return async (e) => {
    if (e) e.preventDefault();
    setError('');
    setBusy(true);
    // Let the page draw "working" before Argon2id holds the thread for a second.
    await new Promise((r) => setTimeout(r, 30));
    try {
      await work();
    } catch (err) {
      setError(err && err.message ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };
}

/** Make a new user or import one. `done(user)` gets the opened wasm `User`. */
export function Welcome({ done }) {
  const [mode, setMode] = useState('create');
  const [name, setName] = useState('');
  const [pass, setPass] = useState('');
  const [again, setAgain] = useState('');
  const [keyText, setKeyText] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState('');

  const create = busyWhile(setBusy, setError, async () => {
    if (pass.length < MIN_PASSPHRASE) {
      throw new Error(`choose a passphrase of at least ${MIN_PASSPHRASE} characters`);
    }
    if (pass !== again) throw new Error('the two passphrases differ');
    const user = basis.User.create();
    const file = user.exportKeyFile(pass);
    if (!store.setKeyFile(file)) throw new Error('this browser refused to keep the key (private mode?)');
    store.setDisplayName(name.trim());
    done(user);
  });

  const importKey = busyWhile(setBusy, setError, async () => {
    const text = keyText.trim();
    basis.User.keyFileUserId(text);
    const user = basis.User.openKeyFile(text, pass);
    if (!store.setKeyFile(text)) throw new Error('this browser refused to keep the key (private mode?)');
    done(user);
  });

  const readFile = async (e) => {
    const f = e.target.files && e.target.files[0];
    if (f) setKeyText(await f.text());
  };

  return html`
    <main class="welcome">
      <h1>Basis</h1>
      <p class="lead">Secure group chat on this network, without the Internet. Your key stays on this device, locked with your passphrase.</p>
      <div class="tabs" role="tablist">
        <button role="tab" aria-selected=${mode === 'create'} class=${mode === 'create' ? 'on' : ''} onClick=${() => setMode('create')}>New user</button>
        <button role="tab" aria-selected=${mode === 'import'} class=${mode === 'import' ? 'on' : ''} onClick=${() => setMode('import')}>I have a key</button>
      </div>
      ${mode === 'create'
        ? html`<form onSubmit=${create}>
            <label>Your name, as others see it<input value=${name} onInput=${(e) => setName(e.target.value)} autocomplete="nickname" maxlength="64" /></label>
            <label>Passphrase (at least ${MIN_PASSPHRASE} characters)<input type="password" value=${pass} onInput=${(e) => setPass(e.target.value)} autocomplete="new-password" required /></label>
            <label>The same passphrase again<input type="password" value=${again} onInput=${(e) => setAgain(e.target.value)} autocomplete="new-password" required /></label>
            <button class="primary" disabled=${busy}>${busy ? 'Making your key…' : 'Create my key'}</button>
          </form>`
        : html`<form onSubmit=${importKey}>
            <label>Key file (from <code>basis user export</code> or another browser)<textarea rows="5" value=${keyText} onInput=${(e) => setKeyText(e.target.value)} spellcheck="false"></textarea></label>
            <label class="file">Or choose the file<input type="file" accept=".txt,.key,text/plain" onChange=${readFile} /></label>
            <label>Its passphrase<input type="password" value=${pass} onInput=${(e) => setPass(e.target.value)} autocomplete="current-password" required /></label>
            <button class="primary" disabled=${busy || !keyText.trim()}>${busy ? 'Opening…' : 'Use this key'}</button>
          </form>`}
      <${Notice} kind="error">${error}<//>
    </main>`;
}

/** Unlock the key kept in this browser. */
export function Unlock({ done, forget }) {
  const [pass, setPass] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState('');
  let who = '';
  try {
    who = `user ${basis.User.keyFileUserId(store.keyFile()).slice(0, 8)}`;
  } catch (_) {
    who = 'the key kept here';
  }
  const name = store.displayName();
  if (name) who = `${name} (${who})`;
  const unlock = busyWhile(setBusy, setError, async () => {
    done(basis.User.openKeyFile(store.keyFile(), pass));
  });
  return html`
    <main class="welcome">
      <h1>Basis</h1>
      <form onSubmit=${unlock}>
        <label>Passphrase of ${who}<input type="password" value=${pass} onInput=${(e) => setPass(e.target.value)} autocomplete="current-password" autofocus required /></label>
        <button class="primary" disabled=${busy}>${busy ? 'Unlocking…' : 'Unlock'}</button>
      </form>
      <${Notice} kind="error">${error}<//>
      <p class="small">Not your key? <button class="link" onClick=${forget}>Use another key on this device</button></p>
    </main>`;
}
