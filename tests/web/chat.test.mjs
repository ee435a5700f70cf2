// The web client in Debian's Chromium, against real nodes: what a person with a phone does,
// checked the way they would check it, and compared with what the command-line client reads.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { BasisNode, quicPort, CliUser, LAPTOP, PHONE, PASSPHRASE, WebUser, closeBrowser, png, saved, sha256, until, wav } from './harness.mjs';

const require = createRequire(import.meta.url);
const SECRET = 'browser test secret';
const SHOTS = process.env.BASIS_SCREENSHOTS; // a folder to keep screenshots in (docs/)

const nodes = [];
after(async () => {
  await closeBrowser();
  for (const n of nodes) {
    await n.stop();
    n.cleanup();
  }
});

/** One node without federation, started. */
async function oneNode(name) {
  const n = new BasisNode({ name });
  nodes.push(n);
  await n.start();
  return n;
}

/** Two nodes with one secret, linked by static peers on loopback. */
async function twoNodes() {
  const [qa, qb] = [quicPort(), quicPort()];
  const a = new BasisNode({ name: 'school', secret: SECRET, quicPort: qa, peers: [`127.0.0.1:${qb}`] });
  const b = new BasisNode({ name: 'depot', secret: SECRET, quicPort: qb, peers: [`127.0.0.1:${qa}`] });
  nodes.push(a, b);
  await a.start();
  await b.start();
  return [a, b];
}

test('two browser users on two nodes and a CLI user chat, edit, react, delete and agree', async () => {
  const [na, nb] = await twoNodes();
  const ana = await WebUser.open(na);
  const ben = await WebUser.open(nb);
  await ana.create('Ana');
  await ben.create('Ben');
  const cli = new CliUser(na);
  cli.run(['user', 'create', '--name', 'Cai']);
  const [anaId, benId, caiId] = [await ana.userId(), await ben.userId(), cli.id()];
  await ana.addContact('ben', benId);
  await ana.addContact('cai', caiId);

  // Ana makes a room and invites Ben (on the other node) and Cai (CLI).
  const p = ana.page;
  await ana.makeRoom(na, 'ops', ['ben', 'cai']);
  // Ben sees the invitation (it crossed the federation) and joins; Cai joins from the CLI.
  await ben.joinRoom(nb, 'ops');
  await until('Cai sees the room', () => cli.json(['rooms']).some((r) => r.name === 'ops'));
  cli.run(['room', 'join', 'ops']);

  // Messages both ways, typing shown to the other.
  await ana.send('water at the school, 14:00');
  await until('Ben reads it', async () => (await ben.shownTexts()).includes('water at the school, 14:00'));
  await ana.page.getByLabel('Message', { exact: true }).fill('typing…');
  await until('Ana is typing, Ben sees it', async () => (await ben.page.locator('.typing').textContent().catch(() => '')).includes('typing'));
  await ana.page.getByLabel('Message', { exact: true }).fill('');
  await ben.send('on my way with the radio');
  await until('Ana reads Ben', async () => (await ana.shownTexts()).includes('on my way with the radio'));
  cli.run(['send', 'ops', 'bringing blankets']);
  await until('both read Cai', async () => (await ana.shownTexts()).includes('bringing blankets') && (await ben.shownTexts()).includes('bringing blankets'));

  // Ana edits her message; Ben reacts to it; Ben deletes his own.
  const anaMsg = ana.page.locator('.msg', { hasText: 'water at the school, 14:00' });
  await anaMsg.locator('.msg-body').click();
  await ana.page.getByRole('button', { name: 'Edit' }).click();
  await ana.page.getByLabel('Message', { exact: true }).fill('water at the school, 15:00');
  await ana.page.getByRole('button', { name: 'Save the edit' }).click();
  await until('Ben sees the edit', async () => (await ben.shownTexts()).some((t) => t.startsWith('water at the school, 15:00')));
  // Ben cannot edit or delete Ana's message: the actions are not offered.
  const onBen = ben.page.locator('.msg', { hasText: 'water at the school, 15:00' });
  await onBen.locator('.msg-body').click();
  assert.equal(await ben.page.getByRole('button', { name: 'Edit' }).count(), 0);
  assert.equal(await ben.page.getByRole('button', { name: 'Delete' }).count(), 0);
  await ben.page.getByRole('button', { name: 'React 👍' }).click();
  const edited = ana.page.locator('.msg', { hasText: 'water at the school, 15:00' });
  await until('Ana sees the reaction', async () => (await edited.locator('.reactions').textContent().catch(() => '')).includes('👍 1'));
  const benMsg = ben.page.locator('.msg', { hasText: 'on my way with the radio' });
  await benMsg.locator('.msg-body').click();
  await ben.page.getByRole('button', { name: 'Delete' }).click();
  await until('Ana sees the delete', async () => !(await ana.shownTexts()).includes('on my way with the radio'));

  // Presence: Ana's page shows Ben online in the member list.
  if ((await ana.page.locator('.members').count()) === 0) {
    await ana.page.getByRole('button', { name: /member/ }).click();
  }
  await until('Ana sees Ben online', async () => (await ana.page.locator('.members li', { hasText: 'ben' }).textContent()).includes('online'));
  // Read receipts: Ben's page marks what he read; Ana sees it under her message.
  await until('Ana sees Ben read', async () => (await ana.page.locator('.receipts').textContent().catch(() => '')).includes('read by ben'));

  // What each browser shows is what the CLI's history says.
  const cliTexts = await until('the CLI has all of it', () => {
    const t = cli.texts('ops');
    return t.length === 2 && t;
  });
  assert.deepEqual(cliTexts, ['water at the school, 15:00', 'bringing blankets']);
  const clean = (ts) => ts.map((t) => t.replace(/ \(edited\)$/, '')).filter((t) => t !== 'message deleted');
  assert.deepEqual(clean(await ana.shownTexts()), cliTexts);
  assert.deepEqual(clean(await ben.shownTexts()), cliTexts);

  // No word sent is in either node's database files.
  for (const n of [na, nb]) {
    const bytes = n.dbBytes();
    for (const word of ['water at the school', 'on my way', 'blankets']) {
      assert.equal(bytes.includes(Buffer.from(word)), false, `${n.name} holds "${word}"`);
    }
  }
  assert.deepEqual(ana.errors, []);
  assert.deepEqual(ben.errors, []);
  await ana.close();
  await ben.close();
});

test('a direct conversation from a contact: named by the other person on both sides, joined, answered', async () => {
  const n = await oneNode('kit');
  const mara = await WebUser.open(n);
  await mara.create('Mara');
  const ben = await WebUser.open(n);
  await ben.create('Ben');
  await mara.addContact('ben', await ben.userId());
  const p = mara.page;
  await p.getByRole('button', { name: 'Message' }).click();
  await p.locator('.room h2', { hasText: 'ben' }).waitFor();
  await mara.send('are you at the depot?');
  // Ben is invited to a conversation named by Mara's profile, and reads her before joining.
  await ben.joinRoom(n, 'Mara');
  await until('Ben reads Mara', async () => (await ben.shownTexts()).includes('are you at the depot?'));
  await ben.send('yes, with the water truck');
  await until('Mara reads Ben', async () => (await mara.shownTexts()).includes('yes, with the water truck'));
  for (const [who, says] of [[mara, 'you started this direct conversation'], [ben, /^Mara \([0-9a-f]{8}\) started this direct conversation$/]]) {
    const events = await who.page.locator('.event').allTextContents();
    assert.ok(events.some((e) => (typeof says === 'string' ? e === says : says.test(e))), JSON.stringify(events));
    assert.ok(events.includes('the beginning of the conversation'), JSON.stringify(events));
    assert.ok(!events.some((e) => e.includes('“dm”')), `the conventional room name is not shown: ${JSON.stringify(events)}`);
    await who.page.goto(n.url + '#/rooms');
    assert.equal(await who.page.locator('.rooms a').count(), 1);
  }
  assert.deepEqual([...mara.errors, ...ben.errors], []);
  await mara.close();
  await ben.close();
});

test('a key made in the browser moves to the CLI and back, and reads the same history', async () => {
  const n = await oneNode('kit');
  const web = await WebUser.open(n);
  await web.create('Dana');
  const webId = await web.userId();
  // Export in the browser (passphrase asked again), import with the CLI.
  const p = web.page;
  await p.goto(n.url + '#/me');
  await p.getByLabel('Passphrase', { exact: true }).fill(PASSPHRASE);
  await p.getByRole('button', { name: 'Show my key file' }).click();
  const keyFile = await p.getByLabel('Your key file').inputValue();
  const cli = new CliUser(n);
  const file = join(cli.dir, 'exported.key');
  require('node:fs').writeFileSync(file, keyFile);
  cli.run(['user', 'import', file]);
  assert.equal(cli.id(), webId);
  // A room and a message from the browser; the CLI with the same key reads it.
  await p.goto(n.url + '#/new');
  await p.getByLabel('Name').fill('logistics');
  await p.getByRole('button', { name: 'Create' }).click();
  await p.locator('.room h2', { hasText: 'logistics' }).waitFor();
  await web.send('twelve boxes of water');
  await until('stored', async () => (await web.page.locator('.msg.pending').count()) === 0);
  cli.run(['send', 'logistics', 'and four of rice']);
  await until('the CLI reads both', () => cli.texts('logistics').length === 2);
  assert.deepEqual(cli.texts('logistics'), ['twelve boxes of water', 'and four of rice']);
  await until('the browser reads both', async () => (await web.shownTexts()).includes('and four of rice'));
  // The reverse: a CLI key opens in a fresh browser.
  const other = new CliUser(n);
  other.run(['user', 'create', '--name', 'Eli']);
  const exported = other.run(['user', 'export']).stdout;
  const web2 = await WebUser.open(n);
  await web2.page.getByRole('tab', { name: 'I have a key' }).click();
  await web2.page.getByLabel(/Key file/).fill(exported);
  await web2.page.getByLabel('Its passphrase').fill(PASSPHRASE);
  await web2.page.getByRole('button', { name: 'Use this key' }).click();
  await web2.page.getByRole('heading', { name: 'Chats' }).waitFor();
  assert.equal(await web2.userId(), other.id());
  await web.close();
  await web2.close();
});

test('the node restarts while a page is open: it reconnects, catches up, sends what was typed once', async () => {
  const n = await oneNode('kit');
  const web = await WebUser.open(n);
  await web.create('Fay');
  const cli = new CliUser(n);
  cli.run(['user', 'create', '--name', 'Gus']);
  await web.addContact('gus', cli.id());
  const p = web.page;
  await p.goto(n.url + '#/new');
  await p.getByLabel('Name').fill('relay');
  await p.getByRole('button', { name: 'Create' }).click();
  await p.locator('.room h2', { hasText: 'relay' }).waitFor();
  await p.getByRole('button', { name: /member/ }).click();
  await p.getByLabel('Invite a contact').selectOption('gus');
  await p.getByRole('button', { name: 'Invite', exact: true }).click();
  await until('Gus invited', () => cli.json(['rooms']).some((r) => r.name === 'relay'));
  cli.run(['room', 'join', 'relay']);
  await web.send('before the outage');
  await until('stored', async () => (await p.locator('.msg.pending').count()) === 0);

  await n.stop();
  await p.locator('.status.offline').waitFor();
  // Typed while the node is down: kept and shown as pending.
  await web.send('typed during the outage');
  await p.locator('.msg.pending', { hasText: 'typed during the outage' }).waitFor();
  await n.start();
  cli.run(['send', 'relay', 'sent while the page was away']);
  await until('reconnected and caught up', async () => (await web.shownTexts()).includes('sent while the page was away'), 60000);
  await until('the pending message went out', async () => (await p.locator('.msg.pending').count()) === 0, 60000);
  // Exactly once, and nothing lost. (It is signed when it goes out, after the node is back,
  // so it sorts after the message sent meanwhile.)
  const texts = await until('the CLI reads all three', () => {
    const t = cli.texts('relay');
    return t.length >= 3 && t;
  });
  assert.equal(texts.filter((t) => t === 'typed during the outage').length, 1, JSON.stringify(texts));
  assert.deepEqual([...texts].sort(), ['before the outage', 'sent while the page was away', 'typed during the outage']);
  assert.equal((await web.shownTexts()).filter((t) => t === 'typed during the outage').length, 1);
  await web.close();
});

test('another key on a shared device starts clean; a message waiting for the node is sealed', async () => {
  const n = await oneNode('lea');
  const gus = new CliUser(n);
  gus.run(['user', 'create', '--name', 'Gus']);
  // Eli's key, made with the CLI, in a room with Gus.
  const eli = new CliUser(n);
  eli.run(['user', 'create', '--name', 'Eli']);
  eli.run(['room', 'create', 'yard']);
  eli.run(['room', 'invite', 'yard', gus.id()]);
  gus.run(['room', 'join', 'yard']);
  const elisKey = eli.run(['user', 'export']).stdout;

  // Ana uses the device first: a contact, a room with Gus, and a message typed while the
  // node is away.
  const web = await WebUser.open(n);
  await web.create('Ana');
  await web.addContact('gus', gus.id());
  await web.makeRoom(n, 'depot', ['gus']);
  gus.run(['room', 'join', 'depot']);
  const p = web.page;
  await n.stop();
  await p.locator('.status.offline').waitFor();
  await web.send('the spare key is under the blue crate');
  await p.locator('.msg.pending', { hasText: 'blue crate' }).waitFor();
  const storage = () => p.evaluate(() => Object.entries(localStorage).map(([k, v]) => `${k}=${v}`).join('\n'));
  const kept = await storage();
  assert.match(kept, /basis\.outbox=/, 'the message is kept in this browser');
  assert.ok(!kept.includes('blue crate'), 'the waiting message is not readable in the browser storage');

  // Ana locks; the lock screen names her. Eli takes the device over with his own key.
  const go = (hash) => p.evaluate((h) => { location.hash = h; }, hash);
  await go('#/me');
  await p.getByRole('button', { name: /Lock/ }).click();
  await p.getByLabel(/Passphrase of Ana \(user [0-9a-f]{8}\)/).waitFor();
  await p.getByRole('button', { name: 'Use another key on this device' }).click();
  assert.match(web.dialogs.at(-1), /The message it has not sent yet goes with it/);
  await p.getByRole('tab', { name: 'I have a key' }).click();
  await p.getByLabel(/Key file/).fill(elisKey);
  await p.getByLabel('Its passphrase').fill(PASSPHRASE);
  await p.getByRole('button', { name: 'Use this key' }).click();
  await p.locator('.status.offline').waitFor();
  await n.start();
  await p.locator('.status.online').waitFor({ timeout: 60000 });

  // Nothing of Ana's carries over: her name, her contacts, her unsent message.
  await until('the page shows Eli\'s own name', async () => {
    await go('#/rooms');
    await go('#/me');
    return (await p.getByLabel('Your name, as others see it').inputValue()) === 'Eli';
  });
  await go('#/contacts');
  await p.getByLabel('Their key').waitFor();
  assert.ok(!(await p.locator('section[aria-label="Contacts"]').innerText()).includes('gus'), 'Ana\'s contacts are gone');
  await go('#/rooms');
  await p.locator('.rooms a', { hasText: 'yard' }).waitFor();
  const history = gus.run(['history', 'yard']).stdout;
  assert.match(history, /Eli \([0-9a-f]{8}\) created the room/);
  assert.ok(!/Ana/.test(history), `Eli's name stays his own: ${history}`);
  assert.ok(!gus.texts('depot').some((t) => t.includes('blue crate')), 'Ana\'s message was not sent under Eli\'s key');
  assert.ok(!(await storage()).includes(gus.id()), 'Ana\'s contact list left the storage');
  assert.deepEqual(web.errors, []);
  await web.close();
});

test('a wrong passphrase, a hostile display name and an unreadable message are handled', async () => {
  const n = await oneNode('kit');
  const web = await WebUser.open(n);
  await web.create('Hana');
  // Lock, then a wrong passphrase is refused in words and the key stays.
  const p = web.page;
  await p.goto(n.url + '#/me');
  await p.getByRole('button', { name: /Lock/ }).click();
  await p.getByLabel(/Passphrase of/).fill('not the passphrase');
  await p.getByRole('button', { name: 'Unlock' }).click();
  await p.getByRole('alert').filter({ hasText: /wrong passphrase/i }).waitFor();
  await p.getByLabel(/Passphrase of/).fill(PASSPHRASE);
  await p.getByRole('button', { name: 'Unlock' }).click();
  await p.locator('.status.online').waitFor();

  // A member whose display name is markup: shown as text, nothing runs.
  const evil = new CliUser(n);
  evil.run(['user', 'create', '--name', '<img src=x onerror="window.pwned=1">']);
  await web.addContact('x', evil.id());
  await p.goto(n.url + '#/new');
  await p.getByLabel('Name').fill('<b>bold</b>');
  await p.getByRole('button', { name: 'Create' }).click();
  await p.locator('.room h2', { hasText: '<b>bold</b>' }).waitFor();
  await web.send('before they came');
  await until('stored', async () => (await p.locator('.msg.pending').count()) === 0);
  await p.getByRole('button', { name: /member/ }).click();
  await p.getByLabel('Invite a contact').selectOption('x');
  await p.getByRole('button', { name: 'Invite', exact: true }).click();
  await until('invited', () => evil.json(['rooms']).length === 1);
  evil.run(['room', 'join', evil.json(['rooms'])[0].room.slice(0, 12)]);
  evil.run(['send', evil.json(['rooms'])[0].room.slice(0, 12), '<script>window.pwned=2</script>']);
  await until('the message shows as text', async () => (await web.shownTexts()).includes('<script>window.pwned=2</script>'));
  await p.getByRole('button', { name: /member/ }).click();
  assert.equal(await p.evaluate(() => window.pwned), undefined);
  assert.equal(await p.locator('img[src=x]').count(), 0);
  assert.equal(await p.locator('.msg b').count(), 0);

  // A newcomer's page: the message from before they were invited says why it is unreadable.
  const late = await WebUser.open(n);
  await late.create('Ivo');
  const lateId = await late.userId();
  await web.addContact('ivo', lateId);
  await web.openRoom('<b>bold</b>');
  await p.getByRole('button', { name: /member/ }).click();
  await p.getByLabel('Invite a contact').selectOption('ivo');
  await p.getByRole('button', { name: 'Invite', exact: true }).click();
  await until('Ivo sees the invitation', async () => {
    await late.page.goto(n.url + '#/rooms');
    return (await late.page.locator('.rooms a').count()) > 0;
  });
  await late.page.locator('.rooms a').first().click();
  await late.page.getByRole('button', { name: 'Join' }).click();
  await until('Ivo is told why he cannot read it', async () => (await late.page.locator('.text.gone').allTextContents()).some((t) => t.includes('sent before you joined')));
  assert.deepEqual(web.errors, []);
  await web.close();
  await late.close();
});

test('a photo, a voice note and a file from one phone open on another, byte for byte; too large is refused first', async () => {
  const n = await oneNode('kit');
  const ana = await WebUser.open(n);
  const ben = await WebUser.open(n);
  await ana.create('Ana');
  await ben.create('Ben');
  await ana.addContact('ben', await ben.userId());
  const p = ana.page;
  await ana.makeRoom(n, 'damage', ['ben']);
  await ben.joinRoom(n, 'damage');

  // Too large: refused in words before anything is sent (a synthetic File in the page).
  await p.evaluate(() => {
    const input = document.querySelector('input[data-input="attach"]');
    const t = new DataTransfer();
    t.items.add(new File([new ArrayBuffer(100 * 1024 * 1024 + 1)], 'huge.bin'));
    input.files = t.files;
    input.dispatchEvent(new Event('change', { bubbles: true }));
  });
  await p.getByRole('alert').filter({ hasText: /huge\.bin” is too large to send .*files up to 100 MiB can be sent/ }).waitFor();
  assert.equal(await p.locator('.msg.pending').count(), 0);

  // The photo from the gallery button, the voice note from the recorder's input, a roster.
  const photo = png(640, 480);
  const voice = wav(20);
  const roster = Buffer.from('name,team\nana,north\nben,south\n');
  await p.locator('input[data-input="attach"]').setInputFiles({ name: 'school roof.png', mimeType: 'image/png', buffer: photo });
  await p.locator('input[data-input="voice"]').setInputFiles({ name: 'note.wav', mimeType: 'audio/wav', buffer: voice });
  await p.locator('input[data-input="attach"]').setInputFiles({ name: 'roster.csv', mimeType: 'text/csv', buffer: roster });
  await until('all three sent', async () => (await p.locator('.msg.pending').count()) === 0 && (await p.locator('.file').count()) === 3, 60000);
  // The sender's own thumbnail, made in this browser, small enough for the message.
  const thumbSrc = await p.locator('.file img.thumb').getAttribute('src');
  assert.match(thumbSrc, /^data:image\/jpeg;base64,/);
  assert.ok(Buffer.from(thumbSrc.split(',')[1], 'base64').length <= 15 * 1024);

  // Ben sees the thumbnail, taps it: the photo opens full size, the same bytes.
  const b = ben.page;
  await b.locator('.file img.thumb').waitFor();
  await b.getByRole('button', { name: /^Photo school roof\.png, .*Open$/ }).click();
  await b.locator('.file img.full').waitFor();
  assert.equal(await b.locator('.file img.full').evaluate((img) => img.naturalWidth), 640);
  const gotPhoto = await saved(b, b.locator('.file.image a.save'));
  assert.equal(gotPhoto.name, 'school roof.png');
  assert.equal(sha256(gotPhoto.bytes), sha256(photo));
  // The voice note plays in an audio player; its bytes are the recording's.
  await b.getByRole('button', { name: /^Voice note or audio note\.wav, .*Play$/ }).click();
  await b.locator('.file audio').waitFor();
  if (SHOTS) await b.screenshot({ path: join(SHOTS, 'web-files.png') });
  const gotVoice = await saved(b, b.locator('.file.audio a.save'));
  assert.equal(sha256(gotVoice.bytes), sha256(voice));
  // Any other file is saved under its name.
  const [dl] = await Promise.all([b.waitForEvent('download'), b.getByRole('button', { name: /^File roster\.csv, .*Download$/ }).click()]);
  assert.equal(dl.suggestedFilename(), 'roster.csv');
  assert.equal(sha256(readFileSync(await dl.path())), sha256(roster));

  // The node holds ciphertext only: no 4 KiB run of the recording in its data directory.
  const run = voice.subarray(100000, 104096);
  const files = require('node:child_process').execFileSync('find', [join(n.dir, 'data'), '-type', 'f'], { encoding: 'utf8' }).trim().split('\n');
  for (const f of files) assert.equal(readFileSync(f).includes(run), false, `${f} holds plaintext`);
  assert.deepEqual(ana.errors, []);
  assert.deepEqual(ben.errors, []);
  // The voice note really plays: the player loads the decrypted recording (the node's
  // content security policy must allow media from blob: URLs).
  const duration = await b.locator('.file audio').evaluate(
    (a) =>
      new Promise((done) => {
        if (a.readyState >= 1) return done(a.duration);
        if (a.error) return done(`error ${a.error.code}`);
        a.onloadedmetadata = () => done(a.duration);
        a.onerror = () => done(`error ${a.error && a.error.code}`);
        setTimeout(() => done('not loaded within 10 s'), 10000);
      }),
  );
  assert.equal(Math.round(duration), 20, `the player did not load the voice note: ${duration} ${ben.console.join(' | ')}`);
  await ana.close();
  await ben.close();
});

test('phone and laptop screenshots, and no serious accessibility violation (axe-core)', async () => {
  const n = await oneNode('field-kit-1');
  const cli = new CliUser(n);
  cli.run(['user', 'create', '--name', 'Jo']);
  const axe = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
  const audit = async (page, where) => {
    await page.addScriptTag({ content: axe });
    const result = await page.evaluate(async () => window.axe.run(document, { resultTypes: ['violations'] }));
    const serious = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
    assert.deepEqual(serious.map((v) => `${v.id}: ${v.help} (${v.nodes.length})`), [], `axe at ${where}`);
  };
  for (const [size, viewport] of [['phone', PHONE], ['laptop', LAPTOP]]) {
    const web = await WebUser.open(n, viewport, { bypassCSP: true });
    await audit(web.page, `${size} welcome`);
    if (SHOTS) await web.page.screenshot({ path: join(SHOTS, `web-${size}-welcome.png`) });
    await web.create(size === 'phone' ? 'Kim' : 'Lee');
    await web.addContact('jo', cli.id());
    const p = web.page;
    await p.goto(n.url + '#/new');
    await p.getByLabel('Name').fill(size === 'phone' ? 'ops' : 'logistics');
    await p.getByRole('button', { name: 'Create' }).click();
    await p.locator('.room h2').waitFor();
    await p.getByRole('button', { name: /member/ }).click();
    await p.getByLabel('Invite a contact').selectOption('jo');
    await p.getByRole('button', { name: 'Invite', exact: true }).click();
    await p.getByRole('button', { name: /member/ }).click();
    const room = size === 'phone' ? 'ops' : 'logistics';
    await until('Jo invited', () => cli.json(['rooms']).some((r) => r.name === room));
    cli.run(['room', 'join', room]);
    await web.send('Water at the school from 14:00. Bring containers.');
    cli.run(['send', room, 'On my way with 20 litres.']);
    await until('shown', async () => (await web.shownTexts()).length === 2);
    await audit(p, `${size} room`);
    if (SHOTS) await p.screenshot({ path: join(SHOTS, `web-${size}-room.png`) });
    await p.goto(n.url + '#/node');
    await p.locator('.facts dd', { hasText: 'field-kit-1' }).waitFor();
    await audit(p, `${size} node page`);
    await p.goto(n.url + '#/contacts');
    await p.locator('img.qr').waitFor();
    await audit(p, `${size} contacts`);
    if (SHOTS && size === 'phone') await p.screenshot({ path: join(SHOTS, `web-${size}-contacts.png`) });
    await web.close();
  }
});
