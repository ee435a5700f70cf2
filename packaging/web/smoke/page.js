// Runs in the browser: loads the module and checks what the browser client needs, step by
// step. The outcome goes to window.smoke = {done, ok, steps: [{name, ok, detail}]}; the node
// runner (smoke.mjs) reads it. Every step must pass; nothing is skipped.
import init, { User, Draft, RoomCrypto, validateEvent, version } from "/pkg/basis_web.js";

const log = document.getElementById("log");
const result = { done: false, ok: false, steps: [] };
window.smoke = result;

function check(condition, message) {
  if (!condition) throw new Error(message);
}

async function step(name, body) {
  const started = performance.now();
  try {
    const detail = await body();
    const ms = Math.round(performance.now() - started);
    result.steps.push({ name, ok: true, detail: `${detail ?? ""} (${ms} ms)`.trim() });
    log.textContent += `ok   ${name}\n`;
  } catch (e) {
    result.steps.push({ name, ok: false, detail: String(e && e.message ? e.message : e) });
    log.textContent += `FAIL ${name}: ${e}\n`;
    throw e;
  }
}

const b64 = (bytes) => btoa(String.fromCharCode(...bytes));

async function main() {
  const passphrase = "correct horse battery staple";
  let ana, keyFile, ben;

  await step("load the module", async () => {
    await init();
    return `basis-web ${version()}`;
  });

  await step("create a user", () => {
    ana = User.create();
    check(/^[0-9a-f]{64}$/.test(ana.userId), `bad user id ${ana.userId}`);
    check(/^[0-9a-f]{64}$/.test(ana.agreementKey), "bad agreement key");
    return ana.shortId;
  });

  await step("export the key file", () => {
    keyFile = ana.exportKeyFile(passphrase);
    check(keyFile.startsWith("-----BEGIN BASIS USER KEY-----\n"), "no BEGIN line");
    check(keyFile.trimEnd().endsWith("-----END BASIS USER KEY-----"), "no END line");
    check(User.keyFileUserId(keyFile) === ana.userId, "header names another user");
    return `${keyFile.length} characters`;
  });

  await step("reopen the key file with the passphrase", () => {
    const back = User.openKeyFile(keyFile, passphrase);
    check(back.userId === ana.userId, "another user came back");
    check(back.agreementKey === ana.agreementKey, "another agreement key came back");
    back.free();
  });

  await step("refuse a wrong passphrase", () => {
    let error = null;
    try {
      User.openKeyFile(keyFile, "wrong passphrase");
    } catch (e) {
      error = e;
    }
    check(error !== null, "a wrong passphrase opened the key file");
    check(typeof error === "string", `error is not a string: ${typeof error}`);
    check(error.includes("wrong passphrase"), `unclear error: ${error}`);
    return error;
  });

  await step("sign the sign-in challenge", () => {
    const reply = JSON.stringify({ challenge: "0b".repeat(32), node_id: "0a".repeat(32), expires_in_secs: 60 });
    const request = JSON.parse(ana.signInRequest(reply));
    check(request.user === ana.userId, "request names another user");
    check(/^[0-9a-f]{128}$/.test(request.signature), "bad signature");
    check(ana.signChallenge("0a".repeat(32), "0b".repeat(32)) === request.signature, "signatures differ");
  });

  let create, room, info;
  await step("sign and validate events", () => {
    create = ana.createRoom("garden", true);
    const c = JSON.parse(validateEvent(create));
    check(c.kind === "create" && c.body.name === "garden" && c.body.encrypted, "create event reads back wrong");
    check(c.author === ana.userId, "wrong author");
    room = c.room;
    ben = User.create();
    // The node's description of the room, as its reply text (times beyond 2^53 stay exact).
    info = `{"room":"${room}","name":"garden","encrypted":true,"history":"since_join",` +
      `"creator":"${ana.userId}","standing":"joined","latest_time":117093590311632897,` +
      `"heads":["${c.id}"],"members":[` +
      `{"user":"${ana.userId}","standing":"joined","agreement_key":"${ana.agreementKey}"},` +
      `{"user":"${ben.userId}","standing":"invited","agreement_key":"${ben.agreementKey}"}]}`;
    const invite = JSON.parse(validateEvent(ana.membership(info, "invite", ben.userId)));
    check(invite.body.action === "invite" && invite.body.target === ben.userId, "invite reads back wrong");
    check(invite.parents[0] === c.id, "invite does not name the head");
    check(BigInt(invite.time) > 117093590311632897n, "event does not sort after the room's newest");
    const profile = JSON.parse(validateEvent(ana.profile("Ana")));
    check(profile.body.agreement_key === ana.agreementKey, "profile carries another key");
    let refused = null;
    try {
      ana.message(info, Draft.text("in the clear"));
    } catch (e) {
      refused = e;
    }
    check(refused !== null && refused.includes("encrypted"), "a plain message was signed for an encrypted room");
    const bytes = ana.receipt(info, "read");
    bytes[bytes.length - 1] ^= 1;
    let bad = null;
    try {
      validateEvent(bytes);
    } catch (e) {
      bad = e;
    }
    check(bad !== null && bad.startsWith("the event does not verify"), `tampered event: ${bad}`);
    return "create, invite, profile, receipt; tampering refused";
  });

  await step("megolm encrypt and decrypt round trip", () => {
    const sending = new RoomCrypto(room);
    const sealed = sending.encrypt(ana, info, Draft.text("hello ben"));
    const share = sealed.keyShareEvent;
    check(share instanceof Uint8Array, "no key share for a new session");
    const shareView = JSON.parse(validateEvent(share));
    check(shareView.body.recipients.includes(ben.userId), "ben is not among the recipients");
    const message = ana.message(info, sealed.draft);
    const view = JSON.parse(validateEvent(message));
    check(view.body.message.type === "encrypted", "message is not encrypted");
    check(!new TextDecoder().decode(message).includes("hello ben"), "plaintext visible in the event");

    const receiving = new RoomCrypto(room);
    let waiting = null;
    try {
      receiving.decrypt(message);
    } catch (e) {
      waiting = e;
    }
    check(waiting !== null && waiting.includes("waiting for the key"), `before the share: ${waiting}`);
    check(receiving.absorb(ben, share) === true, "ben could not open the key share");
    const got = JSON.parse(receiving.decrypt(message));
    check(got.type === "text" && got.text === "hello ben", `decrypted ${JSON.stringify(got)}`);

    // State kept between visits opens again, and the session goes on without a new share.
    const kept = RoomCrypto.restore(ana, room, sending.pickleInbound(ana), sending.pickleOutbound(ana));
    const next = kept.encrypt(ana, info, Draft.text("second"));
    check(next.keyShareEvent === undefined, "a restored session shared a new key");
    const second = ana.message(info, next.draft);

    const timeline = JSON.parse(new RoomCrypto(room).timeline(ben, JSON.stringify(
      [create, share, message, second].map(b64))));
    const texts = timeline.lines.filter((l) => l.shown.type === "text").map((l) => l.shown.text);
    check(JSON.stringify(texts) === JSON.stringify(["hello ben", "second"]), `timeline: ${texts}`);
    return "key share opened by the invitee, timeline decrypted";
  });

  result.ok = true;
}

main()
  .catch(() => {})
  .finally(() => {
    result.done = true;
  });
