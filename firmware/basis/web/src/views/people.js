// Contacts (added by pasting a key or reading a QR code from a photo), this user's own key as
// text and QR code, and the settings of this device: display name, key export, theme.

import { useState } from 'preact/hooks';
import { parseUserKey, shareText } from '../client.js';
import { store } from '../store.js';
import { basis } from '../wasm.js';
import { MIN_PASSPHRASE } from './welcome.js';
import { Notice, copy, download, html } from '../ui.js';

/** A QR code drawn by the wasm module, as an inline SVG image. */
export function Qr({ text, label }) {
  let svg = '';
  try {
    svg = basis.qrSvg(text);
  } catch (_) {
    return html`<p class="notice">This text is too long for a QR code.</p>`;
  }
  const src = 'data:image/svg+xml;charset=utf-8,' + encodeURIComponent(svg);
  return html`<img class="qr" src=${src} alt=${label} />`;
}

/** Reads a QR code from a photo: the browser decodes the image, the wasm module the code. */
async function qrFromPhoto(file) {
  const bitmap = await createImageBitmap(file);
  const scale = Math.min(1, 1200 / Math.max(bitmap.width, bitmap.height));
  const w = Math.max(1, Math.round(bitmap.width * scale));
  const h = Math.max(1, Math.round(bitmap.height * scale));
  const canvas = document.createElement('canvas');
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext('2d');
  ctx.drawImage(bitmap, 0, 0, w, h);
  const rgba = ctx.getImageData(0, 0, w, h).data;
  const luma = new Uint8Array(w * h);
  for (let i = 0, j = 0; i < luma.length; i++, j += 4) {
    luma[i] = (rgba[j] * 77 + rgba[j + 1] * 150 + rgba[j + 2] * 29) >> 8;
  }
  return basis.decodeQr(luma, w, h);
}

export function Contacts({ client }) {
  const [name, setName] = useState('');
  const [key, setKey] = useState('');
  const [error, setError] = useState('');
  const [note, setNote] = useState('');
  const add = (e) => {
    e.preventDefault();
    setError('');
    setNote('');
    try {
      client.addContact(name, parseUserKey(key));
      setNote(`${name.trim()} added`);
      setName('');
      setKey('');
    } catch (err) {
      setError(err.message || String(err));
    }
  };
  const photo = async (e) => {
    setError('');
    const f = e.target.files && e.target.files[0];
    e.target.value = '';
    if (!f) return;
    try {
      setKey(parseUserKey(await qrFromPhoto(f)));
      setNote('key read from the photo: give the person a name and add them');
    } catch (err) {
      setError(`no Basis key found in that photo (${err.message || err}); try again closer and steadier`);
    }
  };
  const mine = shareText(client.me);
  return html`
    <section class="form-page" aria-label="Contacts">
      <div class="bar"><h2>Contacts</h2></div>
      <ul class="contacts">
        ${client.contacts.length === 0 ? html`<li class="empty">No contacts yet.</li>` : ''}
        ${client.contacts.map((c) => html`<li key=${c.user}>
          <span>${c.name}</span> <code>${c.user.slice(0, 8)}</code>
          <button class="link" onClick=${async () => { try { const id = await client.directRoom(c.user); location.hash = '#/room/' + id; } catch (err) { setError(err.message || String(err)); } }}>Message</button>
          <button class="link" onClick=${() => client.removeContact(c.name)} aria-label=${'Remove contact ' + c.name}>remove</button>
        </li>`)}
      </ul>
      <form onSubmit=${add}>
        <h3>Add a contact</h3>
        <label>Name (yours for them, no spaces)<input value=${name} onInput=${(e) => setName(e.target.value)} maxlength="64" required /></label>
        <label>Their key<input value=${key} onInput=${(e) => setKey(e.target.value)} placeholder="basis:user:…" spellcheck="false" required /></label>
        <label class="file">Or take a photo of their QR code<input type="file" accept="image/*" capture="environment" onChange=${photo} /></label>
        <button class="primary">Add</button>
      </form>
      <${Notice} kind="error">${error}<//>
      <${Notice}>${note}<//>
      <h3>Your key, for others to add you</h3>
      <${Qr} text=${mine} label="QR code of your key" />
      <p><code class="share">${mine}</code></p>
      <button onClick=${async () => setNote((await copy(mine)) ? 'copied' : 'select the text and copy it')}>Copy</button>
    </section>`;
}

export function Me({ client, lock }) {
  const [name, setName] = useState(store.displayName());
  const [pass, setPass] = useState('');
  const [exported, setExported] = useState('');
  const [error, setError] = useState('');
  const [note, setNote] = useState('');
  const [theme, setTheme] = useState(store.theme());
  const saveName = async (e) => {
    e.preventDefault();
    setError('');
    try {
      await client.setDisplayName(name.trim());
      setNote('name published');
    } catch (err) {
      setError(err.message || String(err));
    }
  };
  const exportKey = async (e) => {
    e.preventDefault();
    setError('');
    try {
      // The same passphrase opens it; a wrong one is refused here.
      basis.User.openKeyFile(store.keyFile(), pass);
      setExported(store.keyFile());
      setPass('');
    } catch (err) {
      setError(err.message || String(err));
    }
  };
  const pickTheme = (t) => {
    setTheme(t);
    store.setTheme(t);
    document.documentElement.dataset.theme = t;
  };
  return html`
    <section class="form-page" aria-label="You and this device">
      <div class="bar"><h2>You</h2></div>
      <p>User <code>${client.me.slice(0, 8)}</code></p>
      <form onSubmit=${saveName}>
        <label>Your name, as others see it<input value=${name} onInput=${(e) => setName(e.target.value)} maxlength="64" /></label>
        <button>Publish</button>
      </form>
      <form onSubmit=${exportKey}>
        <h3>Move your key to another device</h3>
        <p class="small">The key file stays locked with your passphrase (at least ${MIN_PASSPHRASE} characters). On a computer, <code>basis user import FILE</code> takes it.</p>
        <label>Passphrase<input type="password" value=${pass} onInput=${(e) => setPass(e.target.value)} autocomplete="current-password" required /></label>
        <button>Show my key file</button>
      </form>
      ${exported
        ? html`<div class="export">
            <textarea readonly rows="6" aria-label="Your key file">${exported}</textarea>
            <button onClick=${() => download(`basis-${client.me.slice(0, 8)}.key`, exported)}>Download</button>
            <button onClick=${async () => setNote((await copy(exported)) ? 'copied' : 'select the text and copy it')}>Copy</button>
            <${Qr} text=${exported} label="QR code of your key file" />
          </div>`
        : ''}
      <fieldset class="theme">
        <legend>Theme</legend>
        ${['auto', 'light', 'dark'].map((t) => html`<label class="check"><input type="radio" name="theme" checked=${theme === t} onChange=${() => pickTheme(t)} /> ${t}</label>`)}
      </fieldset>
      <${Notice} kind="error">${error}<//>
      <${Notice}>${note}<//>
      <button onClick=${lock}>Lock (sign out on this device)</button>
    </section>`;
}
