import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createApp, type App } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/log.ts';
import { freePort } from './form.ts';
import { Writable } from 'node:stream';

/** Captures log lines so tests can grep them for canary keys. */
export class LogCapture extends Writable {
  readonly lines: string[] = [];
  _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.lines.push(chunk.toString('utf8'));
    cb();
  }
  text(): string {
    return this.lines.join('');
  }
}

/**
 * A whole app for flow tests: temp data dir, a free port, private base URLs allowed (the
 * fake vendors listen on 127.0.0.1), short retries, logs captured.
 */
export async function testApp(
  env: Record<string, string> = {},
  opts: { runWorker?: boolean } = {},
): Promise<{ app: App; dataDir: string; logs: LogCapture; cleanup: () => Promise<void> }> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'byok-app-'));
  const port = await freePort();
  const config = loadConfig({
    BYOK_DATA_DIR: dataDir,
    PORT: String(port),
    HOST: '127.0.0.1',
    BYOK_ALLOW_PRIVATE_BASE_URLS: '1',
    LOG_LEVEL: 'debug',
    ...env,
  });
  const logs = new LogCapture();
  const app = await createApp({ config, logger: createLogger({ level: 'debug', destination: logs }), retry: { attempts: 3, backoffMs: 20, maxBackoffMs: 100 }, runWorker: opts.runWorker ?? true });
  return {
    app,
    dataDir,
    logs,
    cleanup: async () => {
      await app.stop().catch(() => undefined);
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * A fresh one-time form link for a registered model, as `/byok key <id>` issues it (the
 * channel reference is the test channel's chat `chatId`).
 */
export async function issueFormLink(
  app: Pick<App, 'requests'>,
  workspace: string,
  model: { id: string; vendor: string; name: string; api_key_env: string },
  chatId = '1',
): Promise<string> {
  const req = await app.requests.request({
    workspace,
    channel: { channel: 'test', chat_id: chatId },
    env_vars: [model.api_key_env],
    reason: 'test',
    model_id: model.id,
    vendor: model.vendor,
    vendor_name: 'Fake',
    model_name: model.name,
    homepage: 'https://example.com/keys',
    force: true,
  });
  if (req.status !== 'issued') throw new Error('form not issued');
  return req.url;
}
