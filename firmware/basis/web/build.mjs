// Builds the web client into dist/: the bundled, minified app.js (esbuild), the page, the
// stylesheet, the icon and the wasm module from pkg/ (packaging/web/build-wasm), each also
// gzipped (level 9, no file name or time in the header) so the node can send it compressed.
// The output depends only on the sources and the pinned tools: building twice gives the same
// bytes, which CI checks against the committed dist/.

import { build } from 'esbuild';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, 'dist');
const wasm = join(here, 'pkg', 'basis_web_bg.wasm');

try {
  readFileSync(wasm);
} catch (_) {
  console.error(`build.mjs: ${wasm} is missing: run packaging/web/build (it builds the wasm module first)`);
  process.exit(1);
}

rmSync(dist, { recursive: true, force: true });
mkdirSync(dist);

await build({
  entryPoints: [join(here, 'src', 'main.js')],
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['es2020'],
  outfile: join(dist, 'app.js'),
  legalComments: 'none',
  charset: 'utf8',
  logLevel: 'warning',
});
copyFileSync(join(here, 'index.html'), join(dist, 'index.html'));
copyFileSync(join(here, 'app.css'), join(dist, 'app.css'));
copyFileSync(join(here, 'icon.svg'), join(dist, 'icon.svg'));
copyFileSync(wasm, join(dist, 'basis_web_bg.wasm'));

let total = 0;
const lines = [];
for (const name of readdirSync(dist).sort()) {
  const bytes = readFileSync(join(dist, name));
  const gz = gzipSync(bytes, { level: 9 });
  writeFileSync(join(dist, name + '.gz'), gz);
  total += gz.length;
  const sha = createHash('sha256').update(bytes).digest('hex');
  lines.push(`${sha}  ${name}  ${bytes.length} bytes, ${gz.length} gzipped`);
}
writeFileSync(join(here, 'SHA256SUMS'), lines.join('\n') + '\n');
console.log(lines.join('\n'));
console.log(`total transfer, gzipped: ${total} bytes (${(total / 1024).toFixed(1)} KiB)`);
