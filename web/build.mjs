// Bundles the browser client at build time (no CDN at run time).
import { build } from 'esbuild';
import { cpSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, '..', 'src', 'mediaplane', 'web', 'static');
mkdirSync(out, { recursive: true });
await build({
  entryPoints: [join(here, 'src', 'call.js'), join(here, 'src', 'admin.js')],
  bundle: true,
  format: 'esm',
  target: 'es2022',
  minify: true,
  sourcemap: true,
  outdir: out,
  logLevel: 'warning',
});
for (const page of ['call.html', 'admin.html']) cpSync(join(here, 'src', page), join(out, page));
cpSync(join(here, 'src', 'style.css'), join(out, 'style.css'));
console.log(`built ${out}`);
