import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FORM_CSS } from './page.ts';

export interface Asset {
  body: Buffer;
  type: string;
}

/**
 * The browser script `public/form.js`: next to this file in the sources; from the build
 * (dist/src/secure-input/) it is read from the package's own src/secure-input/public/, so the
 * build does not copy it.
 */
function formScriptPath(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const beside = path.join(here, 'public', 'form.js');
  if (existsSync(beside)) return beside;
  for (let dir = path.dirname(here); path.dirname(dir) !== dir; dir = path.dirname(dir)) {
    const inSources = path.join(dir, 'src', 'secure-input', 'public', 'form.js');
    if (existsSync(inSources)) return inSources;
  }
  return beside; // unreadable: loadAssets fails and the asset route answers an error
}

let assetsPromise: Promise<Record<string, Asset>> | undefined;

/**
 * libsodium for the browser, from our own origin: the UMD builds from node_modules. The core
 * (`libsodium.js`, wasm inlined, sets `window.libsodium`) loads first, then the wrappers
 * (`sodium.js`, sets `window.sodium`). Instantiating the wasm needs `'wasm-unsafe-eval'`.
 */
export function loadAssets(): Promise<Record<string, Asset>> {
  assetsPromise ??= (async () => {
    const require = createRequire(import.meta.url);
    const wrappersMain = require.resolve('libsodium-wrappers'); // dist/modules/libsodium-wrappers.js (UMD)
    const coreMain = require.resolve('libsodium'); // dist/modules/libsodium.js (UMD)
    const js = 'text/javascript; charset=utf-8';
    const [wrappers, core, form] = await Promise.all([
      readFile(wrappersMain),
      readFile(coreMain),
      readFile(formScriptPath()),
    ]);
    return {
      'sodium.js': { body: wrappers, type: js },
      'libsodium.js': { body: core, type: js },
      'form.js': { body: form, type: js },
      'form.css': { body: Buffer.from(FORM_CSS, 'utf8'), type: 'text/css; charset=utf-8' },
    };
  })();
  assetsPromise.catch(() => {
    assetsPromise = undefined;
  });
  return assetsPromise;
}
