// The web client's budgets, measured (a benchmark: it prints figures beside their limits and
// asserts nothing about time): bytes on the wire for a first load, how long until the first
// screen is usable with the CPU slowed 4× (DevTools protocol), and the tab's JavaScript heap
// with 10 rooms of 1000 encrypted messages loaded.
//
//   BASIS_BIN=target/release/basis node tests/web/budget.mjs
//
// The messages are made by the same wasm module the page runs, loaded here in Node.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BasisNode, PASSPHRASE, closeBrowser, launch } from './harness.mjs';

const here = fileURLToPath(new URL('.', import.meta.url));
const pkg = join(here, '../../firmware/basis/web/pkg');
const ROOMS = Number(process.env.BUDGET_ROOMS || 10);
const MESSAGES = Number(process.env.BUDGET_MESSAGES || 1000);

const wasm = await import(join(pkg, 'basis_web.js'));
await wasm.default({ module_or_path: readFileSync(join(pkg, 'basis_web_bg.wasm')) });

const node = await new BasisNode({ name: 'budget' }).start();
const base = node.url.replace(/\/$/, '');

async function api(method, path, body, token, text = false) {
  const r = await fetch(base + path, {
    method,
    headers: { 'Content-Type': 'application/json', ...(token ? { Authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const t = await r.text();
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${t}`);
  return text ? t : JSON.parse(t);
}
const b64 = (bytes) => Buffer.from(bytes).toString('base64');

// ---- 1. First load and first screen, CPU slowed 4×.
const browser = await launch();
const first = await browser.newContext({ viewport: { width: 360, height: 640 } });
const page = await first.newPage();
const cdp = await first.newCDPSession(page);
await cdp.send('Network.enable');
await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
await cdp.send('Emulation.setCPUThrottlingRate', { rate: 4 });
let wire = 0;
cdp.on('Network.loadingFinished', (e) => (wire += e.encodedDataLength));
const t0 = Date.now();
await page.goto(node.url);
await page.getByRole('button', { name: 'Create my key' }).waitFor();
const usable = Date.now() - t0;
await page.waitForLoadState('networkidle');
await first.close();

// ---- 2. A user with 10 rooms of 1000 messages, made through the API by the wasm module.
const user = wasm.User.create();
const keyFile = user.exportKeyFile(PASSPHRASE);
const challenge = await api('POST', '/v1/auth/challenge', { user: user.userId }, null, true);
const { token } = await api('POST', '/v1/auth/session', user.signInRequest(challenge));
user.observeNodeStatus(await api('GET', '/v1/status', undefined, token, true));
await api('POST', '/v1/events', { event: b64(user.profile('Budget')) }, token);
const made = Date.now();
for (let r = 0; r < ROOMS; r++) {
  const posted = await api('POST', '/v1/rooms', { event: b64(user.createRoom(`room ${r + 1}`, true)) }, token);
  const crypto = new wasm.RoomCrypto(posted.room);
  for (let m = 0; m < MESSAGES; m++) {
    const info = await api('GET', `/v1/rooms/${posted.room}`, undefined, token, true);
    const sealed = crypto.encrypt(user, info, wasm.Draft.text(`message ${m + 1} in room ${r + 1}: water, blankets and radios`));
    let roomText = info;
    if (sealed.keyShareEvent) {
      await api('POST', '/v1/events', { event: b64(sealed.keyShareEvent) }, token);
      roomText = await api('GET', `/v1/rooms/${posted.room}`, undefined, token, true);
    }
    await api('POST', '/v1/events', { event: b64(user.message(roomText, sealed.draft)) }, token);
  }
}
const making = (Date.now() - made) / 1000;

// ---- 3. The page with all of it loaded: every room opened and scrolled to its beginning.
const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
const tab = await ctx.newPage();
const heapCdp = await ctx.newCDPSession(tab);
await tab.goto(node.url);
await tab.getByRole('tab', { name: 'I have a key' }).click();
await tab.getByLabel(/Key file/).fill(keyFile);
await tab.getByLabel('Its passphrase').fill(PASSPHRASE);
await tab.getByRole('button', { name: 'Use this key' }).click();
await tab.locator('.status.online').waitFor();
const opened = Date.now();
for (let r = 0; r < ROOMS; r++) {
  await tab.locator('.rooms a', { hasText: `room ${r + 1}` }).first().click();
  await tab.locator('.room h2', { hasText: `room ${r + 1}` }).waitFor();
  for (let i = 0; i < 100; i++) {
    if ((await tab.locator('.messages .event', { hasText: 'the beginning of the room' }).count()) > 0) break;
    await tab.locator('.messages').evaluate((el) => {
      el.scrollTop = 0;
      el.dispatchEvent(new Event('scroll'));
    });
    await tab.waitForTimeout(150);
  }
  const shown = await tab.locator('.msg:not(.pending)').count();
  if (shown < MESSAGES) throw new Error(`room ${r + 1} shows ${shown} of ${MESSAGES} messages`);
}
const loading = (Date.now() - opened) / 1000;
await heapCdp.send('HeapProfiler.collectGarbage');
const heap = await heapCdp.send('Runtime.getHeapUsage');
await ctx.close();
await closeBrowser();
await node.stop();
node.cleanup();

const mib = (n) => (n / 1048576).toFixed(2);
console.log(`first load, bytes on the wire:       ${(wire / 1024).toFixed(0)} KiB (budget 1536 KiB) = ${(wire / (1536 * 1024)).toFixed(2)}× the budget`);
console.log(`first screen usable, CPU 4× slower:  ${(usable / 1000).toFixed(2)} s (budget 3 s)`);
console.log(`JS heap, ${ROOMS} rooms × ${MESSAGES} messages:  ${mib(heap.usedSize)} MiB used of ${mib(heap.totalSize)} MiB (budget 50 MiB)`);
console.log(`(made ${ROOMS * MESSAGES} encrypted messages in ${making.toFixed(0)} s; the page loaded them all in ${loading.toFixed(0)} s)`);
