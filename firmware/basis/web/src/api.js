// The node's client API (docs/CLIENT-API.md) as the page uses it: JSON over HTTP on the same
// origin, and the live WebSocket. Times in the node's JSON are 64-bit hybrid clock values that
// JSON.parse would round, so replies that wasm needs exactly are also kept as text.

/** A refusal from the node: `code` is stable, `message` is for people. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** The node could not be reached at all (offline, restarting). */
export class Unreachable extends Error {}

/** One signed-in connection to the node that served this page. */
export class Node {
  constructor(base = '') {
    this.base = base;
    this.token = null;
  }

  /** `body`: JSON (object or text) or bytes (a Uint8Array, sent as octet-stream); `bytes`: the
   * answer as a Uint8Array. */
  async request(method, path, body, { text = false, bytes = false } = {}) {
    const binary = body instanceof Uint8Array;
    let response;
    let raw;
    try {
      response = await fetch(this.base + path, {
        method,
        headers: {
          ...(body !== undefined ? { 'Content-Type': binary ? 'application/octet-stream' : 'application/json' } : {}),
          ...(this.token ? { Authorization: `Bearer ${this.token}` } : {}),
        },
        body: body === undefined ? undefined : binary || typeof body === 'string' ? body : JSON.stringify(body),
        cache: 'no-store',
      });
      if (bytes && response.ok) return new Uint8Array(await response.arrayBuffer());
      raw = await response.text();
    } catch (e) {
      // The request, or reading its answer, failed: the Wi-Fi dropped or the node is away.
      throw new Unreachable('cannot reach the node: is it running, and is this device on its network?');
    }
    if (!response.ok) {
      let code = 'http_' + response.status;
      let message = `the node answered ${response.status}`;
      try {
        const e = JSON.parse(raw);
        code = e.code || code;
        message = e.message || message;
      } catch (_) {
        // Not JSON: keep the status line.
      }
      if (response.status === 502 || response.status === 503 || response.status === 504) {
        throw new Unreachable(message);
      }
      throw new ApiError(response.status, code, message);
    }
    if (text) return raw;
    return raw ? JSON.parse(raw) : null;
  }

  /** Signs in with the user (a wasm `User`): challenge, signature, token. */
  async signIn(user) {
    const challenge = await this.request('POST', '/v1/auth/challenge', { user: user.userId }, { text: true });
    const session = await this.request('POST', '/v1/auth/session', user.signInRequest(challenge));
    this.token = session.token;
    const status = await this.request('GET', '/v1/status', undefined, { text: true });
    user.observeNodeStatus(status);
    return JSON.parse(status);
  }

  signOut() {
    if (!this.token) return Promise.resolve();
    const token = this.token;
    this.token = null;
    return fetch(this.base + '/v1/auth/session', {
      method: 'DELETE',
      headers: { Authorization: `Bearer ${token}` },
    }).catch(() => {});
  }

  status() {
    return this.request('GET', '/v1/status');
  }

  peers() {
    return this.request('GET', '/v1/peers');
  }

  async rooms() {
    return (await this.request('GET', '/v1/rooms')).rooms;
  }

  /** The room's description as text (for wasm) and parsed. */
  async room(id) {
    const text = await this.request('GET', `/v1/rooms/${id}`, undefined, { text: true });
    return { text, info: JSON.parse(text) };
  }

  history(room, before, limit = 100) {
    const q = new URLSearchParams({ limit: String(limit) });
    if (before) q.set('before', before);
    return this.request('GET', `/v1/rooms/${room}/events?${q}`);
  }

  async state(room) {
    return (await this.request('GET', `/v1/rooms/${room}/state`)).events;
  }

  user(id) {
    return this.request('GET', `/v1/users/${id}`);
  }

  /** Posts signed event bytes where the kind belongs (`path` from the caller). */
  postEvent(bytes, path = '/v1/events') {
    return this.request('POST', path, { event: base64(bytes) });
  }

  // ---- Files (docs/CLIENT-API.md, "Files"): ciphertext chunks only; sealing is wasm's.

  /** What the node holds of a file: `{address, size, chunk_size, chunks, held, state, missing}`.
   * Asking also starts fetching a file of the user's rooms that is not here yet. */
  fileInfo(address) {
    return this.request('GET', `/v1/files/${address}`);
  }

  /** Announces a file by its chunk list (before its chunks). */
  putFileList(address, size, chunkSize, list) {
    const q = new URLSearchParams({ size: String(size), chunk_size: String(chunkSize) });
    return this.request('PUT', `/v1/files/${address}/list?${q}`, list);
  }

  /** Stores one ciphertext chunk. */
  putChunk(address, index, bytes) {
    return this.request('PUT', `/v1/files/${address}/chunks/${index}`, bytes);
  }

  /** One ciphertext chunk (ApiError `not_held` while the node does not have it yet). */
  chunk(address, index) {
    return this.request('GET', `/v1/files/${address}/chunks/${index}`, undefined, { bytes: true });
  }

  /** Opens the live stream; `on` gets each parsed message, `closed` is called once. */
  stream(on, closed) {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const base = this.base || `${scheme}//${location.host}`;
    const url = base.replace(/^http/, 'ws') + `/v1/stream?access_token=${encodeURIComponent(this.token)}`;
    const ws = new WebSocket(url);
    let done = false;
    const finish = () => {
      if (!done) {
        done = true;
        closed();
      }
    };
    ws.onmessage = (m) => {
      try {
        on(JSON.parse(m.data));
      } catch (_) {
        // A message this page does not understand is skipped.
      }
    };
    ws.onclose = finish;
    ws.onerror = finish;
    return ws;
  }
}

/** Standard base64 of bytes. */
export function base64(bytes) {
  let s = '';
  const chunk = 0x8000;
  for (let i = 0; i < bytes.length; i += chunk) {
    s += String.fromCharCode.apply(null, bytes.subarray(i, i + chunk));
  }
  return btoa(s);
}

/** Bytes of standard base64. */
export function unbase64(text) {
  const s = atob(text);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}
