import sodium from 'libsodium-wrappers';

/**
 * Submits a one-time secure form over HTTP exactly as the page's own script does: read the
 * public key and key id from the page, seal each value with crypto_box_seal, POST only the
 * sealed boxes. For flow tests that are not about the browser (the browser itself is
 * covered by test/e2e/secure-form.browser.test.ts).
 */
export async function submitForm(
  url: string,
  values: Record<string, string>,
  opts: { headers?: Record<string, string> } = {},
): Promise<{ status: number; body: unknown; statusUrl: string }> {
  await sodium.ready;
  // The page GET carries the same headers (e.g. X-Forwarded-For behind a test proxy).
  const page = await fetch(url, { headers: opts.headers });
  if (page.status !== 200) throw new Error(`form page answered ${page.status}`);
  const html = await page.text();
  const pk = /data-public-key="([^"]+)"/.exec(html)?.[1];
  const keyId = /data-key-id="([^"]+)"/.exec(html)?.[1];
  if (!pk || !keyId) throw new Error('form page has no public key');
  const publicKey = sodium.from_base64(pk, sodium.base64_variants.ORIGINAL);
  const sealed: Record<string, string> = {};
  for (const [env, value] of Object.entries(values)) {
    sealed[env] = sodium.to_base64(sodium.crypto_box_seal(sodium.from_string(value), publicKey), sodium.base64_variants.ORIGINAL);
  }
  const u = new URL(url);
  const res = await fetch(`${u.origin}${u.pathname}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json', ...opts.headers },
    body: JSON.stringify({ key_id: keyId, sealed }),
  });
  const body = await res.json().catch(() => undefined);
  return { status: res.status, body, statusUrl: `${u.origin}${u.pathname}/status` };
}

/** Polls until `fn` returns a truthy value (or throws after `timeoutMs`). */
export async function waitFor<T>(fn: () => T | Promise<T>, timeoutMs = 10_000, what = 'condition'): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** A free TCP port on 127.0.0.1 (PUBLIC_URL must be known before the app listens). */
export async function freePort(): Promise<number> {
  const net = await import('node:net');
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}
