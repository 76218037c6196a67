import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

/** Debian's chromium; `.ci/run` installs it with apt-get when missing. Never `npx playwright install`. */
export const CHROMIUM_PATH = process.env.BYOK_CHROMIUM_PATH || '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-quic',
  '--no-first-run',
];

/**
 * Launches headless Chromium with a fresh, empty profile (Playwright creates a new temporary
 * user data dir per launch and removes it on close). Throws, never skips, when the browser
 * is missing: a browser test that silently does not run proves nothing.
 */
export async function launchBrowser(): Promise<Browser> {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(
      `Chromium not found at ${CHROMIUM_PATH}. Install it with \`apt-get install -y chromium\` ` +
        '(or set BYOK_CHROMIUM_PATH); the browser tests do not download browsers.',
    );
  }
  return chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: CHROMIUM_ARGS, timeout: 60_000 });
}
