import http from 'node:http';

/**
 * A Telegram Bot API server on 127.0.0.1 for tests that run bot processes (which cannot take
 * an in-process grammY transformer): `POST /bot<token>/<method>` with a JSON body, answered
 * in the Bot API's own shapes (`{ ok, result }`, errors as `{ ok:false, error_code,
 * description }`). Every call is recorded with its arrival time, so a test can count calls
 * per second across every process that shares the bot token.
 *
 * Messages are kept per chat (sendMessage creates, editMessageText replaces the text), so
 * `textOf(chat)` is what the user would see now.
 */
export interface BotApiCall {
  method: string;
  token: string;
  payload: Record<string, any>;
  at: number;
}

export interface FakeBotApi {
  url: string;
  calls: BotApiCall[];
  of(method: string): BotApiCall[];
  /** The texts of the chat's messages as they read now, oldest first. */
  messages(chatId: number | string): { id: number; text: string; markup?: any }[];
  /** Busiest one-second window of outbound calls (sends, edits, drafts, deletes). */
  maxCallsPerSecond(since?: number): number;
  /** The calls of that busiest window, counted by method. */
  busiestSecond(since?: number): Record<string, number>;
  reset(): void;
  close(): Promise<void>;
}

const OUTBOUND = new Set(['sendMessage', 'editMessageText', 'sendMessageDraft', 'deleteMessage', 'editMessageReplyMarkup', 'sendChatAction']);

export async function startFakeBotApi(opts: { username?: string; draftsSupported?: boolean } = {}): Promise<FakeBotApi> {
  const calls: BotApiCall[] = [];
  const chats = new Map<string, Map<number, { text: string; markup?: any }>>();
  let nextId = 1;
  const chatOf = (id: unknown) => {
    const k = String(id);
    let m = chats.get(k);
    if (!m) chats.set(k, (m = new Map()));
    return m;
  };

  const answer = (method: string, p: Record<string, any>): { status: number; body: unknown } => {
    const ok = (result: unknown) => ({ status: 200, body: { ok: true, result } });
    const message = (id: number, text: string) => ({ message_id: id, date: Math.floor(Date.now() / 1000), chat: { id: Number(p.chat_id), type: Number(p.chat_id) < 0 ? 'group' : 'private' }, text });
    switch (method) {
      case 'getMe':
        return ok({ id: 700001, is_bot: true, first_name: 'Byok', username: opts.username ?? 'byok_test_bot', can_join_groups: true, can_read_all_group_messages: false, supports_inline_queries: false });
      case 'setWebhook':
      case 'deleteWebhook':
      case 'setMyCommands':
      case 'answerCallbackQuery':
      case 'sendChatAction':
        return ok(true);
      case 'sendMessageDraft':
        if (opts.draftsSupported === false) return { status: 404, body: { ok: false, error_code: 404, description: 'Not Found: method not found' } };
        return ok(true);
      case 'sendMessage': {
        const id = nextId++;
        chatOf(p.chat_id).set(id, { text: String(p.text ?? ''), markup: p.reply_markup });
        return ok(message(id, String(p.text ?? '')));
      }
      case 'editMessageText': {
        const m = chatOf(p.chat_id).get(Number(p.message_id));
        if (!m) return { status: 400, body: { ok: false, error_code: 400, description: 'Bad Request: message to edit not found' } };
        if (m.text === String(p.text) && JSON.stringify(m.markup ?? null) === JSON.stringify(p.reply_markup ?? null)) {
          return { status: 400, body: { ok: false, error_code: 400, description: 'Bad Request: message is not modified' } };
        }
        m.text = String(p.text ?? '');
        m.markup = p.reply_markup;
        return ok(message(Number(p.message_id), m.text));
      }
      case 'editMessageReplyMarkup': {
        const m = chatOf(p.chat_id).get(Number(p.message_id));
        if (m) m.markup = p.reply_markup;
        return ok(true);
      }
      case 'deleteMessage':
        chatOf(p.chat_id).delete(Number(p.message_id));
        return ok(true);
      case 'getChatMember':
        return ok({ status: 'member', user: { id: Number(p.user_id), is_bot: false, first_name: 'u' } });
      default:
        return { status: 404, body: { ok: false, error_code: 404, description: 'Not Found: method not found' } };
    }
  };

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const m = /^\/bot([^/]+)\/([A-Za-z]+)/.exec(req.url ?? '');
      if (!m) {
        res.writeHead(404).end();
        return;
      }
      let payload: Record<string, any> = {};
      const text = Buffer.concat(chunks).toString('utf8');
      try {
        payload = text ? JSON.parse(text) : {};
      } catch {
        payload = {};
      }
      calls.push({ method: m[2], token: m[1], payload, at: Date.now() });
      const { status, body } = answer(m[2], payload);
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    });
  });
  const busiest = (since: number): BotApiCall[] => {
    const out = calls.filter((c) => c.at >= since && OUTBOUND.has(c.method)).sort((a, b) => a.at - b.at);
    let best: [number, number] = [0, 0];
    for (let i = 0, j = 0; i < out.length; i++) {
      while (out[i].at - out[j].at >= 1000) j++;
      if (i - j + 1 > best[1] - best[0]) best = [j, i + 1];
    }
    return out.slice(best[0], best[1]);
  };
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    calls,
    of: (method) => calls.filter((c) => c.method === method),
    messages: (chatId) => [...chatOf(chatId).entries()].map(([id, v]) => ({ id, text: v.text, markup: v.markup })),
    maxCallsPerSecond(since = 0) {
      return busiest(since).length;
    },
    busiestSecond(since = 0) {
      const out: Record<string, number> = {};
      for (const c of busiest(since)) out[c.method] = (out[c.method] ?? 0) + 1;
      return out;
    },
    reset() {
      calls.length = 0;
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
