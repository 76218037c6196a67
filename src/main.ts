import { createApp } from './app.ts';
import { loadConfig } from './config.ts';
import { isByokError } from './errors.ts';
import { ShellChannel } from '../channels/shell/shell.ts';

/**
 * `npm start`: the HTTP server (secure forms, webhooks, /healthz), the notifier, the
 * worker unless REDIS_URL is set, and the channels configured in the environment; the
 * shell channel when neither Telegram nor WeChat is configured.
 */
async function main(): Promise<void> {
  const config = loadConfig();
  const app = await createApp({ config });
  if (config.telegram) {
    const { TelegramChannel } = await import('../channels/telegram/index.ts');
    app.addChannel(new TelegramChannel({ config, logger: app.logger }));
  }
  if (config.wechat) {
    const { WechatChannel } = await import('../channels/wechat/index.ts');
    app.addChannel(new WechatChannel({ config, logger: app.logger, langOf: async (ws: string) => (await app.router.state.getPrefs(ws)).lang }));
  }
  const shell = !config.telegram && !config.wechat;
  if (shell) app.addChannel(new ShellChannel({ input: process.stdin, output: process.stdout, onEnd: () => void shutdown() }));
  const { url } = await app.start();
  if (shell) process.stdout.write(`byok-bot (shell channel) — secure forms at ${url}. Type /help.\n`);

  let stopping = false;
  async function shutdown(): Promise<void> {
    if (stopping) return;
    stopping = true;
    await app.stop();
    process.exit(0);
  }
  process.on('SIGINT', () => void shutdown());
  process.on('SIGTERM', () => void shutdown());
}

main().catch((e) => {
  process.stderr.write(`byok-bot failed to start: ${isByokError(e) ? `${e.code}: ${e.message}` : (e as Error).message}\n`);
  process.exit(1);
});
