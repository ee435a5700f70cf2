// What the page keeps in this browser (localStorage, which works on plain HTTP): the user's
// key file (encrypted with the passphrase, the same format as `basis user export`), contacts,
// each room's Megolm sessions and the outbox of messages not yet taken by the node (both
// sealed with the state key inside the key file), and small things. Without the passphrase
// only these are readable: contacts (nicknames and keys), the user's display name, room ids
// with their unread counts, and the theme. Files picked but not yet on the node are kept in
// IndexedDB (`kept`, below), which holds a File where localStorage holds only strings: they
// are the user's own files, as the device already holds them. All of it but the theme
// belongs to the key: forgetting the key forgets it too.

const PREFIX = 'basis.';

function get(key, fallback) {
  try {
    const v = localStorage.getItem(PREFIX + key);
    return v === null ? fallback : JSON.parse(v);
  } catch (_) {
    return fallback;
  }
}

function set(key, value) {
  try {
    localStorage.setItem(PREFIX + key, JSON.stringify(value));
    return true;
  } catch (_) {
    // Storage full or refused (private mode): the caller says so.
    return false;
  }
}

export const store = {
  keyFile: () => get('keyfile', null),
  setKeyFile: (text) => set('keyfile', text),
  /** Forgets the key and everything kept for it: contacts, display name, room keys, unread
   * counts, messages and files it had not sent yet. The next key used here starts clean
   * (it would otherwise publish the last user's name, and send the last user's messages). */
  forgetKeyFile: () => {
    const mine = [];
    for (let i = 0; i < localStorage.length; i++) {
      const key = localStorage.key(i);
      if (key && key.startsWith(PREFIX) && key !== PREFIX + 'theme') mine.push(key);
    }
    for (const key of mine) localStorage.removeItem(key);
    if (typeof indexedDB !== 'undefined') indexedDB.deleteDatabase('basis');
  },

  contacts: () => get('contacts', []),
  setContacts: (list) => set('contacts', list),

  /** Sealed room keys: `{inbound, outbound}` as base64, per room id. */
  roomKeys: (room) => get('keys.' + room, null),
  setRoomKeys: (room, keys) => set('keys.' + room, keys),

  /** Messages typed but not yet stored by the node, oldest first. */
  outbox: () => get('outbox', []),
  setOutbox: (list) => set('outbox', list),

  /** Unread message counts and the newest time seen per room. */
  unread: () => get('unread', {}),
  setUnread: (u) => set('unread', u),

  theme: () => get('theme', 'auto'),
  setTheme: (t) => set('theme', t),

  displayName: () => get('name', ''),
  setDisplayName: (n) => set('name', n),
};

/** Nickname of a user id among the contacts, if any. */
export function nickname(contacts, user) {
  const c = contacts.find((c) => c.user === user);
  return c ? c.name : null;
}

// ---- Files on their way: the picked File with its room and name, so that a reload, or a
// phone that drops the tab while the node is away, does not lose what the user sent. A File
// is stored as the user's device already holds it; its sealed chunks are made again after a
// reload. Each call opens the database briefly: uploads are few and far between.

function uploadsDb(mode, work) {
  return new Promise((done, fail) => {
    const open = indexedDB.open('basis', 1);
    open.onupgradeneeded = () => open.result.createObjectStore('uploads', { keyPath: 'lid' });
    open.onerror = () => fail(open.error);
    open.onsuccess = () => {
      const db = open.result;
      const tx = db.transaction('uploads', mode);
      const request = work(tx.objectStore('uploads'));
      tx.oncomplete = () => {
        db.close();
        done(request.result);
      };
      tx.onerror = tx.onabort = () => {
        db.close();
        fail(tx.error);
      };
    };
  });
}

export const kept = {
  /** Every upload kept, any user's: the caller picks its own. Empty when IndexedDB is refused. */
  uploads: () => uploadsDb('readonly', (s) => s.getAll()).catch(() => []),
  /** Keeps `{lid, user, room, name, type, size, file}`; false when the browser refuses. */
  keepUpload: (job) => uploadsDb('readwrite', (s) => s.put(job)).then(() => true, () => false),
  dropUpload: (lid) => uploadsDb('readwrite', (s) => s.delete(lid)).catch(() => undefined),
};
