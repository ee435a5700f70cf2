// What the browser tests share: nodes started from the `basis` binary on loopback, the `basis`
// command-line client, and Debian's Chromium driven by playwright-core (never a downloaded
// browser). Every helper fails loudly: a test that cannot run must not pass.

import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32, deflateSync } from 'node:zlib';
import { chromium } from 'playwright-core';

export const BIN = process.env.BASIS_BIN;
export const CHROMIUM = process.env.BASIS_CHROMIUM || '/usr/bin/chromium';
export const PASSPHRASE = 'a long test passphrase';

if (!BIN || !existsSync(BIN)) {
  throw new Error(`BASIS_BIN must name the basis binary (got ${BIN}); tests/browser.rs sets it`);
}
if (!existsSync(CHROMIUM)) {
  throw new Error(`no Chromium at ${CHROMIUM}: apt-get install chromium (tests/run does)`);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` (sync or async) until it returns a truthy value; fails after `ms`. */
export async function until(what, check, ms = 30000) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    try {
      last = await check();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await sleep(200);
  }
  throw new Error(`not within ${ms} ms: ${what} (last: ${last && last.stack ? last.stack : JSON.stringify(last)})`);
}

/** A node: its own data directory, API on loopback; federation by secret and static peers. */
export class BasisNode {
  /** `federation` is more of the [federation] table, as TOML lines (such as `reconcile_secs = 5`). */
  constructor({ name, secret = null, quicPort = 0, apiPort = 0, peers = [], federation = '' }) {
    this.dir = mkdtempSync(join(tmpdir(), 'basis-web-'));
    this.name = name;
    this.apiPort = apiPort;
    let fed = '';
    if (secret) {
      fed = `[federation]\nsecret = "${secret}"\nport = ${quicPort}\nmdns = false\npeers = [${peers.map((p) => `"${p}"`).join(', ')}]\n${federation}\n`;
    }
    this.config = join(this.dir, 'basis.toml');
    writeFileSync(
      this.config,
      `[node]\ndata_dir = "${join(this.dir, 'data')}"\nname = "${name}"\n[api]\nlisten = "127.0.0.1:${apiPort}"\nrate_per_sec = 100000\nrate_burst = 100000\n${fed}`,
    );
    this.runs = 0;
  }

  async start() {
    this.runs += 1;
    this.logPath = join(this.dir, `run-${this.runs}.log`);
    const args = ['--config', this.config, 'run'];
    if (this.url) {
      // Restarted: the same port, so open pages find it again.
      args.push('--set', `api.listen=127.0.0.1:${new URL(this.url).port}`);
    }
    this.child = spawn(BIN, args, { env: { ...cleanEnv(), RUST_LOG: 'info' }, stdio: ['ignore', 'ignore', 'pipe'] });
    this.log = '';
    this.child.stderr.on('data', (d) => (this.log += d));
    await until(`${this.name} ready`, () => / ready/.test(this.log) && /client API on /.test(this.log), 30000);
    const m = this.log.match(/client API on (http:\/\/[^/\s]+)/);
    this.url = m[1] + '/';
    return this;
  }

  async stop() {
    if (!this.child) return;
    const done = new Promise((r) => this.child.once('exit', r));
    this.child.kill('SIGTERM');
    await done;
    this.child = null;
  }

  /** Every byte of the database files, to look for plaintext. */
  dbBytes() {
    const data = join(this.dir, 'data');
    return Buffer.concat(
      readdirSync(data)
        .filter((f) => f.startsWith('basis.db'))
        .map((f) => readFileSync(join(data, f))),
    );
  }

  cleanup() {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function cleanEnv() {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('BASIS_') && k !== 'NOTIFY_SOCKET') env[k] = v;
  }
  return env;
}

/** A command-line user with its own client folder, talking to `node`. */
export class CliUser {
  constructor(node) {
    this.node = node;
    this.dir = mkdtempSync(join(tmpdir(), 'basis-cli-'));
  }

  run(args, { ok = true } = {}) {
    const r = spawnSync(BIN, args, {
      env: {
        ...cleanEnv(),
        BASIS_NODE: this.node.url.replace(/\/$/, ''),
        BASIS_CLIENT_DIR: this.dir,
        BASIS_PASSPHRASE: PASSPHRASE,
        BASIS_KDF: 'fast',
      },
      encoding: 'utf8',
      timeout: 120000,
    });
    if (ok && r.status !== 0) {
      throw new Error(`basis ${args.join(' ')} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
    }
    return r;
  }

  json(args) {
    return JSON.parse(this.run([...args, '--json']).stdout);
  }

  id() {
    return this.json(['user', 'show']).user;
  }

  /** Text lines of the room's history, oldest first. */
  texts(room) {
    return this.json(['history', room, '--limit', '500'])
      .lines.filter((l) => l.shown.type === 'text')
      .map((l) => l.shown.text);
  }
}

let browser = null;

/** The shared Chromium (Debian's), started once per test file. */
export async function launch() {
  if (!browser) {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  }
  return browser;
}

export async function closeBrowser() {
  if (browser) await browser.close();
  browser = null;
}

/** Phone size first: 360 × 640. */
/** A QUIC port for a node that other nodes list as a static peer before it starts (random in
 * 20000-39999; the node fails at start, naming the port, if something holds it). */
export function quicPort() {
  return 20000 + Math.floor(Math.random() * 20000);
}

export const PHONE = { width: 360, height: 640 };
export const LAPTOP = { width: 1280, height: 800 };

/** A person in a browser: its own storage (context), a page on `node`. */
export class WebUser {
  static async open(node, viewport = PHONE, options = {}) {
    const b = await launch();
    const context = await b.newContext({ viewport, ...options });
    const page = await context.newPage();
    const u = new WebUser(context, page);
    page.on('pageerror', (e) => u.errors.push(e.message));
    page.on('console', (m) => {
      if (m.type() === 'error') u.console.push(m.text());
    });
    page.on('dialog', (d) => {
      u.dialogs.push(d.message());
      d.accept();
    });
    await page.goto(node.url);
    return u;
  }

  constructor(context, page) {
    this.context = context;
    this.page = page;
    this.errors = [];
    this.console = [];
    this.dialogs = [];
  }

  async create(name, passphrase = PASSPHRASE) {
    const p = this.page;
    await p.getByLabel('Your name, as others see it').fill(name);
    await p.getByLabel('Passphrase (at least 8 characters)').fill(passphrase);
    await p.getByLabel('The same passphrase again').fill(passphrase);
    await p.getByRole('button', { name: 'Create my key' }).click();
    await p.getByRole('heading', { name: 'Chats' }).waitFor();
    await p.locator('.status.online').waitFor();
  }

  /** After a reload: the key kept in this browser, unlocked with its passphrase (the page
   * then links to its node, or says it is offline while the node is away). */
  async unlock(passphrase = PASSPHRASE) {
    const p = this.page;
    await p.getByLabel(/Passphrase of/).fill(passphrase);
    await p.getByRole('button', { name: 'Unlock' }).click();
    await p.locator('.status').waitFor();
  }

  async userId() {
    await this.page.goto(this.page.url().split('#')[0] + '#/contacts');
    const share = await this.page.locator('code.share').textContent();
    return share.replace('basis:user:', '').trim();
  }

  async addContact(name, key) {
    const p = this.page;
    await p.goto(p.url().split('#')[0] + '#/contacts');
    await p.getByLabel('Name (yours for them, no spaces)').fill(name);
    await p.getByLabel('Their key').fill(key);
    await p.getByRole('button', { name: 'Add', exact: true }).click();
    await p.getByText(`${name} added`).waitFor();
  }

  /** Makes a room named `name` on `node` (encrypted, as the page makes them) and invites
   * each of `contacts` (nicknames); the room stays open, its member list closed. */
  async makeRoom(node, name, contacts) {
    const p = this.page;
    await p.goto(node.url + '#/new');
    await p.getByLabel('Name').fill(name);
    await p.getByRole('button', { name: 'Create' }).click();
    await p.locator('.room h2', { hasText: name }).waitFor();
    await p.getByRole('button', { name: /member/ }).click();
    for (const who of contacts) {
      await p.getByLabel('Invite a contact').selectOption(who);
      await p.getByRole('button', { name: 'Invite', exact: true }).click();
      await p.locator('.members li', { hasText: who }).waitFor();
    }
    await p.getByRole('button', { name: /member/ }).click();
  }

  /** Waits until the invitation to `name` is on `node` (it may cross the federation), then
   * joins the room; it stays open. */
  async joinRoom(node, name, ms = 30000) {
    await until(`the invitation to ${name} reaches the page`, async () => {
      await this.page.goto(node.url + '#/rooms');
      return (await this.page.locator('.rooms a', { hasText: name }).count()) > 0;
    }, ms);
    await this.openRoom(name);
    await this.page.getByRole('button', { name: 'Join' }).click();
    await this.page.getByLabel('Message', { exact: true }).waitFor();
  }

  async openRoom(name) {
    const p = this.page;
    await p.goto(p.url().split('#')[0] + '#/rooms');
    await p.locator('.rooms a', { hasText: name }).first().click();
    await p.locator('.room h2', { hasText: name }).waitFor();
  }

  async send(text) {
    await this.page.getByLabel('Message', { exact: true }).fill(text);
    await this.page.getByRole('button', { name: 'Send' }).click();
  }

  /** The texts of the open room's messages, as shown. */
  async shownTexts() {
    return this.page.locator('.msg:not(.pending) .text').allTextContents();
  }

  async close() {
    await this.context.close();
  }
}

/** A real PNG (`w` × `h`, a colour gradient), for the browser to decode and thumbnail. */
export function png(w, h) {
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    return Buffer.concat([len, body, crc]);
  };
  const head = Buffer.alloc(13);
  head.writeUInt32BE(w, 0);
  head.writeUInt32BE(h, 4);
  head.set([8, 2, 0, 0, 0], 8); // 8-bit RGB
  const rows = [];
  for (let y = 0; y < h; y++) {
    const row = Buffer.alloc(1 + w * 3);
    for (let x = 0; x < w; x++) row.set([(x * 255) / w, (y * 255) / h, (x * y) % 256], 1 + x * 3);
    rows.push(row);
  }
  const sig = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([sig, chunk('IHDR', head), chunk('IDAT', deflateSync(Buffer.concat(rows))), chunk('IEND', Buffer.alloc(0))]);
}

/** A WAV recording of `seconds` of a tone (8 kHz, 16-bit mono): more than one 256 KiB chunk at 20 s. */
export function wav(seconds) {
  const n = 8000 * seconds;
  const b = Buffer.alloc(44 + n * 2);
  b.write('RIFF', 0);
  b.writeUInt32LE(36 + n * 2, 4);
  b.write('WAVEfmt ', 8);
  b.writeUInt32LE(16, 16);
  b.writeUInt16LE(1, 20);
  b.writeUInt16LE(1, 22);
  b.writeUInt32LE(8000, 24);
  b.writeUInt32LE(16000, 28);
  b.writeUInt16LE(2, 32);
  b.writeUInt16LE(16, 34);
  b.write('data', 36);
  b.writeUInt32LE(n * 2, 40);
  for (let i = 0; i < n; i++) b.writeInt16LE(Math.round(8000 * Math.sin((i * 2 * Math.PI * 440) / 8000) + ((i * 7919) % 97)), 44 + i * 2);
  return b;
}

export const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');

/** Clicks `link` (an <a download>) and returns the saved file's name and bytes. */
export async function saved(page, link) {
  const [dl] = await Promise.all([page.waitForEvent('download'), link.click()]);
  return { name: dl.suggestedFilename(), bytes: readFileSync(await dl.path()) };
}
