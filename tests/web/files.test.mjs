// Issue 16's "done when", in the browser: a photo taken on one phone and a voice note recorded
// on another reach everyone in an encrypted room across three nodes, a partition and a
// restart. Three phone pages, one per node; every phone sees each file in its timeline (a
// photo by its thumbnail), and tapping it opens or plays the very bytes that were sent.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { BasisNode, quicPort, WebUser, closeBrowser, png, saved, sha256, until, wav } from './harness.mjs';

const SECRET = 'browser files secret';
const SHOTS = process.env.BASIS_SCREENSHOTS;
/** Long enough for a link to notice a cut, reconnect and reconcile (reconcile_secs = 5). */
const MESH = 120000;

const nodes = [];
let cutTable = null;
after(async () => {
  if (cutTable) nft(['delete', 'table', 'inet', cutTable]);
  await closeBrowser();
  for (const n of nodes) {
    await n.stop();
    n.cleanup();
  }
});

function nft(args, input) {
  return spawnSync('nft', args, { input, encoding: 'utf8' });
}

/** Why this machine cannot cut a node off on loopback (nftables, as root), or null. */
function cannotCut() {
  const r = nft(['list', 'tables']);
  if (r.error) return 'no nft (Debian: apt-get install nftables; tests/run does)';
  if (r.status !== 0) return `nft cannot change the firewall here (root is needed): ${r.stderr.trim()}`;
  return null;
}

/** Cuts the node on QUIC port `port` off the mesh: every UDP packet from or to that port on
 * loopback is dropped, by an nftables table of this test's own (its page still reaches its
 * node over HTTP). `heal` removes the table. */
function cut(port) {
  cutTable = `basis_webcut_${process.pid}`;
  const rules = `udp sport ${port} drop; udp dport ${port} drop;`;
  const r = nft(['-f', '-'], `table inet ${cutTable} {\n  chain input { type filter hook input priority -300; policy accept; ${rules} }\n  chain output { type filter hook output priority -300; policy accept; ${rules} }\n}\n`);
  assert.equal(r.status, 0, `nft: ${r.stderr}`);
}

function heal() {
  const r = nft(['delete', 'table', 'inet', cutTable]);
  assert.equal(r.status, 0, `nft: ${r.stderr}`);
  cutTable = null;
}

/** A real JPEG as a phone camera makes one: drawn and encoded by the browser itself. */
async function cameraJpeg(page, w, h) {
  const b64 = await page.evaluate(
    ([w, h]) => {
      const c = document.createElement('canvas');
      c.width = w;
      c.height = h;
      const g = c.getContext('2d');
      const grad = g.createLinearGradient(0, 0, w, h);
      grad.addColorStop(0, '#3a6ea5');
      grad.addColorStop(1, '#e0a030');
      g.fillStyle = grad;
      g.fillRect(0, 0, w, h);
      g.fillStyle = '#222';
      g.fillRect(w / 4, h / 3, w / 2, h / 3);
      return c.toDataURL('image/jpeg', 0.9).split(',')[1];
    },
    [w, h],
  );
  return Buffer.from(b64, 'base64');
}

const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The file's tap target in `user`'s open room: its bubble, labelled with kind, name and size. */
function fileButton(user, kind, name) {
  const words = kind === 'image' ? ['Photo', 'Open'] : ['Voice note or audio', 'Play'];
  return user.page.getByRole('button', { name: new RegExp(`^${words[0]} ${escape(name)}, .*${words[1]}$`) });
}

/** Waits until `user`'s room shows the photo by its thumbnail (drawn, not a broken image). */
async function seesPhoto(user, name, ms = MESH) {
  await until(
    `${user.name} sees the thumbnail of ${name}`,
    async () => (await fileButton(user, 'image', name).locator('img.thumb').evaluate((img) => img.complete && img.naturalWidth > 0).catch(() => false)),
    ms,
  );
}

/** Waits until `user`'s room shows the voice note. */
async function seesVoice(user, name, ms = MESH) {
  await until(`${user.name} sees the voice note ${name}`, async () => (await fileButton(user, 'audio', name).count()) === 1, ms);
}

/** Taps the photo: it opens full size, and saving it gives the original bytes. */
async function opensPhoto(user, name, original, width) {
  const p = user.page;
  await fileButton(user, 'image', name).click();
  const full = p.locator(`.file img.full[alt="${name}"]`);
  await full.waitFor({ timeout: MESH });
  await until(`${user.name}: ${name} decoded`, () => full.evaluate((img) => img.complete && img.naturalWidth > 0));
  assert.equal(await full.evaluate((img) => img.naturalWidth), width, `${user.name}: ${name} is not full size`);
  const got = await saved(p, p.locator(`.file a.save[download="${name}"]`));
  assert.equal(got.name, name);
  assert.equal(sha256(got.bytes), sha256(original), `${user.name}: ${name} is not the photo that was sent`);
}

/** Taps the voice note: a player loads it with its length, and saving gives the recording. */
async function playsVoice(user, name, original, seconds) {
  const p = user.page;
  await fileButton(user, 'audio', name).click();
  const player = p.getByLabel(`Play ${name}`);
  await player.waitFor({ timeout: MESH });
  const duration = await player.evaluate(
    (a) =>
      new Promise((done) => {
        if (a.readyState >= 1) return done(a.duration);
        a.onloadedmetadata = () => done(a.duration);
        a.onerror = () => done(`error ${a.error && a.error.code}`);
      }),
  );
  assert.equal(Math.round(duration), seconds, `${user.name}: the player did not load ${name}: ${duration}`);
  const got = await saved(p, p.locator(`.file a.save[download="${name}"]`));
  assert.equal(sha256(got.bytes), sha256(original), `${user.name}: ${name} is not the recording`);
}

async function shot(user, what) {
  if (!SHOTS) return;
  await user.page.screenshot({ path: join(SHOTS, `web-files-${what}.png`) });
}

test('a photo from one phone and a voice note from another reach all three nodes, across a partition and a restart', async (t) => {
  const why = cannotCut();
  if (why) {
    assert.equal(process.env.CI, undefined, `the partition cannot be made, and CI is set: ${why}`);
    t.skip(why);
    return;
  }
  // Three nodes, each linked to the other two by static peers on loopback.
  const quic = [quicPort(), quicPort(), quicPort()];
  const names = ['school', 'depot', 'clinic'];
  for (let i = 0; i < 3; i++) {
    const peers = quic.filter((_, j) => j !== i).map((q) => `127.0.0.1:${q}`);
    nodes.push(new BasisNode({ name: names[i], secret: SECRET, quicPort: quic[i], peers, federation: 'reconcile_secs = 5' }));
  }
  for (const n of nodes) await n.start();
  const [na, nb, nc] = nodes;
  const ana = await WebUser.open(na);
  const ben = await WebUser.open(nb);
  const cyd = await WebUser.open(nc);
  ana.name = 'Ana (school)';
  ben.name = 'Ben (depot)';
  cyd.name = 'Cyd (clinic)';
  await ana.create('Ana');
  await ben.create('Ben');
  await cyd.create('Cyd');
  await ana.addContact('ben', await ben.userId());
  await ana.addContact('cyd', await cyd.userId());

  // Ana makes an encrypted room and invites the other two; each joins on their own node.
  const p = ana.page;
  await ana.makeRoom(na, 'damage', ['ben', 'cyd']);
  await ben.joinRoom(nb, 'damage', MESH);
  await cyd.joinRoom(nc, 'damage', MESH);
  await until('Ana sees both join', async () => (await p.getByRole('button', { name: /3 members/ }).count()) === 1, MESH);

  // Phone 1 takes a photo (the camera input); phone 2 records a voice note (the recorder's).
  const photo = await cameraJpeg(p, 800, 600);
  const voice = wav(12);
  await p.locator('input[data-input="camera"]').setInputFiles({ name: 'roof.jpg', mimeType: 'image/jpeg', buffer: photo });
  await ben.page.locator('input[data-input="voice"]').setInputFiles({ name: 'voice note.wav', mimeType: 'audio/wav', buffer: voice });
  // Every phone, the senders' own included, shows both and opens them byte for byte.
  for (const u of [ana, ben, cyd]) {
    await seesPhoto(u, 'roof.jpg');
    await seesVoice(u, 'voice note.wav');
  }
  await shot(cyd, 'clinic-before');
  for (const u of [ana, ben, cyd]) {
    await opensPhoto(u, 'roof.jpg', photo, 800);
    await playsVoice(u, 'voice note.wav', voice, 12);
  }
  await shot(cyd, 'clinic-opened');

  // A partition: the clinic's node is cut off. A photo sent meanwhile reaches the depot only.
  cut(quic[2]);
  const photo2 = png(480, 360);
  await p.locator('input[data-input="attach"]').setInputFiles({ name: 'bridge.png', mimeType: 'image/png', buffer: photo2 });
  await seesPhoto(ben, 'bridge.png');
  await opensPhoto(ben, 'bridge.png', photo2, 480);
  assert.equal(await fileButton(cyd, 'image', 'bridge.png').count(), 0, 'the photo crossed the partition');
  // Healed: it reaches the clinic's phone, thumbnail first, and opens to the same bytes.
  heal();
  await seesPhoto(cyd, 'bridge.png');
  await opensPhoto(cyd, 'bridge.png', photo2, 480);
  await shot(cyd, 'clinic-after-heal');

  // A restart: the depot's node stops. Phone 2 says it is offline and records another voice
  // note, which waits for the node; then the phone's browser drops the tab (the page is
  // gone, as a phone does with a tab in the background). Ana sends a photo meanwhile.
  await nb.stop();
  await ben.page.locator('.status.offline').waitFor();
  const voice2 = wav(5);
  await ben.page.locator('input[data-input="voice"]').setInputFiles({ name: 'second note.wav', mimeType: 'audio/wav', buffer: voice2 });
  const waiting = ben.page.locator('.msg.pending', { hasText: 'second note.wav' });
  await waiting.getByText(/waiting for the network/).waitFor();
  assert.equal(await waiting.locator('progress').evaluate((bar) => bar.value), 0, 'the bar shows bytes sent while none could be');
  await ben.page.goto('about:blank');
  const photo3 = await cameraJpeg(p, 640, 480);
  await p.locator('input[data-input="camera"]').setInputFiles({ name: 'road.jpg', mimeType: 'image/jpeg', buffer: photo3 });
  await seesPhoto(cyd, 'road.jpg');
  // The node is back; Ben opens the page again and unlocks his key: the voice note kept in
  // the browser goes out and reaches the others, and he gets the photo sent meanwhile.
  await nb.start();
  await ben.page.goto(nb.url);
  await ben.unlock();
  await ben.page.locator('.status.online').waitFor({ timeout: MESH });
  await ben.openRoom('damage');
  for (const u of [ana, cyd]) {
    await seesVoice(u, 'second note.wav');
    await playsVoice(u, 'second note.wav', voice2, 5);
  }
  await until('phone 2 has sent everything', async () => (await ben.page.locator('.msg.pending').count()) === 0, MESH);
  // And it shows and opens everything, from before the restart and since.
  for (const name of ['roof.jpg', 'bridge.png', 'road.jpg']) await seesPhoto(ben, name);
  for (const name of ['voice note.wav', 'second note.wav']) await seesVoice(ben, name);
  await shot(ben, 'depot-after-restart');
  await opensPhoto(ben, 'roof.jpg', photo, 800);
  await opensPhoto(ben, 'bridge.png', photo2, 480);
  await opensPhoto(ben, 'road.jpg', photo3, 640);
  await playsVoice(ben, 'voice note.wav', voice, 12);
  await playsVoice(ben, 'second note.wav', voice2, 5);
  await shot(ben, 'depot-opened');
  // Exactly once on every phone: nothing lost, nothing doubled.
  for (const u of [ana, ben, cyd]) {
    assert.equal(await u.page.locator('.file').count(), 5, `${u.name} does not show the five files once each`);
    assert.deepEqual(u.errors, [], `${u.name}: errors in the page`);
  }
  for (const u of [ana, ben, cyd]) await u.close();
});
