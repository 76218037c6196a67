/**
 * Telegram updates as the Bot API posts them to a webhook: what the multi-process tests send
 * through their round-robin proxy.
 */

/** Posts one update; any non-2xx or network error is re-sent later, as Telegram does. Returns the tries it took. */
export async function deliverUpdate(webhookUrl: string, secret: string, update: Record<string, unknown>, opts: { maxTries?: number } = {}): Promise<number> {
  const max = opts.maxTries ?? 200;
  for (let i = 0; ; i++) {
    try {
      const res = await fetch(webhookUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-telegram-bot-api-secret-token': secret },
        body: JSON.stringify(update),
      });
      await res.arrayBuffer();
      if (res.ok) return i + 1;
    } catch {
      /* connection refused or reset: re-send */
    }
    if (i + 1 >= max) throw new Error(`update ${String(update.update_id)} was never accepted`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** A private-chat text message from `user` (commands carry their bot_command entity). */
export function privateTextUpdate(user: number, text: string, id: number, lang = 'en'): Record<string, unknown> {
  const entities = text.startsWith('/') ? [{ type: 'bot_command', offset: 0, length: text.split(/\s/)[0]!.length }] : undefined;
  return {
    update_id: id,
    message: {
      message_id: id,
      date: Math.floor(Date.now() / 1000),
      chat: { id: user, type: 'private', first_name: `u${user}` },
      from: { id: user, is_bot: false, first_name: `u${user}`, language_code: lang },
      text,
      ...(entities ? { entities } : {}),
    },
  };
}

/** Where a distributed test's processes find each other. */
export interface WebhookDeployment {
  redisUrl: string;
  prefix: string;
  masterKey: string;
  dataDir: string;
  /** The round-robin proxy in front of the web processes (public URL and webhook host). */
  proxyUrl: string;
  botToken: string;
  botApiUrl: string;
  webhookSecret: string;
}

/** The environment of `npm start` / `npm run worker` in distributed mode, Telegram by webhook behind the proxy. */
export function deploymentEnv(d: WebhookDeployment, extra: Record<string, string> = {}): Record<string, string> {
  return {
    REDIS_URL: d.redisUrl,
    BYOK_REDIS_PREFIX: d.prefix,
    BYOK_MASTER_KEY: d.masterKey,
    BYOK_DATA_DIR: d.dataDir,
    BYOK_ALLOW_PRIVATE_BASE_URLS: '1',
    HOST: '127.0.0.1',
    PUBLIC_URL: d.proxyUrl,
    TELEGRAM_BOT_TOKEN: d.botToken,
    TELEGRAM_API_ROOT: d.botApiUrl,
    TELEGRAM_WEBHOOK_URL: `${d.proxyUrl}/telegram/webhook`,
    TELEGRAM_WEBHOOK_SECRET: d.webhookSecret,
    LOG_LEVEL: 'info',
    ...extra,
  };
}
