// Serves the smoke page and the built module on 127.0.0.1, opens it in Debian's Chromium
// through playwright-core (which downloads no browser), and fails unless every step of
// page.js passed and the panic hook reported a panic with its message.
//
// Usage: node smoke.mjs PKG_DIR      (PKG_DIR: output of packaging/web/build-wasm)
// CHROMIUM overrides the browser (default /usr/bin/chromium).
import { createServer } from "node:http";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { extname, join, normalize, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = fileURLToPath(new URL(".", import.meta.url));
const pkg = resolve(process.argv[2] ?? "");
if (!process.argv[2]) {
  console.error("usage: node smoke.mjs PKG_DIR");
  process.exit(2);
}
const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const types = { ".html": "text/html", ".js": "text/javascript", ".wasm": "application/wasm" };

// Only the smoke page's two files and the module's directory are served.
function fileFor(urlPath) {
  if (urlPath === "/" || urlPath === "/index.html") return join(here, "index.html");
  if (urlPath === "/page.js") return join(here, "page.js");
  if (urlPath.startsWith("/pkg/")) {
    const file = normalize(join(pkg, urlPath.slice(5)));
    if (file.startsWith(pkg + "/")) return file;
  }
  return null;
}

const server = createServer((req, res) => {
  const file = fileFor(new URL(req.url, "http://127.0.0.1").pathname);
  try {
    if (!file || !statSync(file).isFile()) throw new Error("not found");
    res.writeHead(200, { "content-type": types[extname(file)] ?? "application/octet-stream" });
    res.end(readFileSync(file));
  } catch {
    res.writeHead(404);
    res.end();
  }
});
await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
const url = `http://127.0.0.1:${server.address().port}/`;

const profile = mkdtempSync(join(tmpdir(), "basis-smoke-"));
let failed = true;
let context;
try {
  // A persistent context on a fresh, empty profile directory (removed afterwards).
  context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    chromiumSandbox: false,
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
  console.log(`browser: ${executablePath} ${context.browser()?.version() ?? ""}`);
  const page = await context.newPage();
  const problems = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("requestfailed", (r) => problems.push(`request failed: ${r.url()}`));
  await page.goto(url);
  await page.waitForFunction(() => window.smoke && window.smoke.done, null, { timeout: 120_000 });
  const result = await page.evaluate(() => window.smoke);
  for (const s of result.steps) {
    console.log(`${s.ok ? "ok  " : "FAIL"} ${s.name}${s.detail ? `: ${s.detail}` : ""}`);
  }
  for (const p of problems) console.log(`FAIL ${p}`);

  // A panic must reach the console with its message, not only as a bare "unreachable".
  const panicPage = await context.newPage();
  const consoleErrors = [];
  panicPage.on("console", (m) => m.type() === "error" && consoleErrors.push(m.text()));
  await panicPage.goto(url);
  const thrown = await panicPage.evaluate(async () => {
    const m = await import("/pkg/basis_web.js");
    await m.default();
    try {
      m.panicForDiagnostics("smoke check");
      return "no panic";
    } catch (e) {
      return String(e);
    }
  });
  const reported = consoleErrors.some((t) => t.includes("diagnostic panic: smoke check"));
  console.log(`${reported ? "ok  " : "FAIL"} a panic reaches the console with its message (thrown: ${thrown})`);

  failed = !result.ok || problems.length > 0 || !reported || result.steps.length === 0;
} catch (e) {
  console.log(`FAIL ${e.stack ?? e}`);
} finally {
  if (context) await context.close();
  server.close();
  rmSync(profile, { recursive: true, force: true });
}
console.log(failed ? "smoke check FAILED" : "smoke check passed");
process.exit(failed ? 1 : 0);
