// What the page keeps in this browser (localStorage, which works on plain HTTP): the user's
// key file (encrypted with the passphrase, the same format as `basis user export`), contacts,
// each room's Megolm sessions (sealed with the state key inside the key file), the outbox of
// messages not yet taken by the node, and small preferences. Nothing here is readable without
// the passphrase except contacts, preferences and room ids.

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
  forgetKeyFile: () => localStorage.removeItem(PREFIX + 'keyfile'),

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
