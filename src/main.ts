import { createApp } from './app.ts';
import { loadConfig } from './config.ts';
import { isByokError } from './errors.ts';
import { ShellChannel } from '../channels/shell/shell.ts';

/**
 * `npm start`: the HTTP server (secure forms, webhooks, /healthz), the notifier, the
 * worker unless REDIS_URL is set, and the channels configured in the environment; the
 * shell channel when neither Telegram nor WeChat is configured.
 */
/** How long SIGTERM may take before the process exits anyway (BYOK_SHUTDOWN_TIMEOUT_SECONDS). */
const SHUTDOWN_TIMEOUT_MS = (Number(process.env.BYOK_SHUTDOWN_TIMEOUT_SECONDS) || 30) * 1000;

async function main(): Promise<void> {
  const config = loadConfig();
  const app = await createApp({ config });
  if (config.telegram) {
    const { TelegramChannel } = await import('../channels/telegram/index.ts');
    app.addChannel(new TelegramChannel({ config, logger: app.logger, store: app.store, drainMs: config.drainMs }));
  }
  if (config.wechat) {
    const { WechatChannel } = await import('../channels/wechat/index.ts');
    app.addChannel(new WechatChannel({ config, logger: app.logger, langOf: async (ws: string) => (await app.router.state.getPrefs(ws)).lang }));
  }
  // The shell channel is for a person at a terminal. A distributed web process without a
  // chat channel (a container: no terminal, stdin closed) serves the forms and keeps running.
  const noChannel = !config.telegram && !config.wechat;
  const shell = noChannel && (!config.redisUrl || process.stdin.isTTY === true);
  if (shell) app.addChannel(new ShellChannel({ input: process.stdin, output: process.stdout, onEnd: () => void shutdown() }));
  const { url } = await app.start();
  if (shell) process.stdout.write(`byok-bot (shell channel) — secure forms at ${url}. Type /help.\n`);
  else if (noChannel) app.logger.info({ url }, 'no chat channel configured (TELEGRAM_BOT_TOKEN, WECHATY_PUPPET): serving the secure forms only');

  let stopping = false;
  async function shutdown(signal = 'end of input'): Promise<void> {
    if (stopping) return;
    stopping = true;
    app.logger.info({ signal }, 'stopping: no new updates; finishing the answers and jobs in flight');
    // A bound on the whole drain: a deploy must not wait forever on a hung vendor. Jobs
    // still running then return to the queue (their lock expires) for another process.
    // Room for the drain, the cut-off notices and closing the queues.
    const bound = Math.max(SHUTDOWN_TIMEOUT_MS, config.drainMs + 10_000);
    const hard = setTimeout(() => {
      app.logger.error({ timeoutMs: bound }, 'shutdown took too long; exiting now');
      process.exit(1);
    }, bound);
    hard.unref();
    try {
      await app.stop();
    } catch (e) {
      app.logger.error({ err: e }, 'shutdown failed');
      process.exit(1);
    }
    app.logger.info('stopped');
    process.exit(0);
  }
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
}

main().catch((e) => {
  process.stderr.write(`byok-bot failed to start: ${isByokError(e) ? `${e.code}: ${e.message}` : (e as Error).message}\n`);
  process.exit(1);
});
