import { randomBytes } from 'node:crypto';
import type { InlineKeyboardButton } from 'grammy/types';
import type { Choice } from '../../src/channel.ts';
import type { Store } from '../../src/store/types.ts';

/**
 * Callback data for inline buttons (Telegram allows 1–64 bytes):
 *   `/…`              a plain command (the "new form" button on a card): passed through.
 *   `c|<uid36>|<cmd>` a choice bound to the user who asked for the menu.
 *   `k|<uid36>|<key>` the same, when `<cmd>` is too long: the command waits in the store.
 *   `p|<uid36>|<n>`   picker page n (the rows wait in the store, keyed by chat and message).
 * The state lives in the store, so a tap handled by any process finds it. A tap by another
 * user is refused (foreign); a menu older than the TTL, or whose state expired, is stale.
 */

export const MAX_CALLBACK_BYTES = 64;

export type Decoded =
  | { kind: 'command'; data: string }
  | { kind: 'choice'; owner: string; data: string }
  | { kind: 'long'; owner: string; key: string }
  | { kind: 'page'; owner: string; page: number }
  | { kind: 'invalid' };

export function uid36(userId: string | number): string {
  const n = typeof userId === 'number' ? userId : Number(userId);
  return Number.isSafeInteger(n) && n >= 0 ? n.toString(36) : String(userId).replace(/\|/g, '');
}

export function decodeCallback(data: string | undefined): Decoded {
  if (!data) return { kind: 'invalid' };
  if (data.startsWith('/')) return { kind: 'command', data };
  const m = /^([ckp])\|([0-9a-z]+)\|([\s\S]+)$/.exec(data);
  if (!m) return { kind: 'invalid' };
  const owner = String(parseInt(m[2], 36));
  if (m[1] === 'c') return { kind: 'choice', owner, data: m[3] };
  if (m[1] === 'k') return { kind: 'long', owner, key: m[3] };
  const page = Number(m[3]);
  return Number.isInteger(page) && page >= 0 ? { kind: 'page', owner, page } : { kind: 'invalid' };
}

/** A map whose entries expire; bounded so a flood of menus cannot grow it without limit. */
export class TtlMap<V> {
  private readonly m = new Map<string, { v: V; exp: number }>();
  constructor(
    private readonly ttlMs: number,
    private readonly max = 10_000,
  ) {}
  get(k: string): V | undefined {
    const e = this.m.get(k);
    if (!e) return undefined;
    if (e.exp < Date.now()) {
      this.m.delete(k);
      return undefined;
    }
    return e.v;
  }
  set(k: string, v: V): void {
    this.m.delete(k);
    this.m.set(k, { v, exp: Date.now() + this.ttlMs });
    if (this.m.size > this.max) {
      const now = Date.now();
      for (const [key, e] of this.m) {
        if (this.m.size <= this.max && e.exp >= now) break;
        this.m.delete(key);
      }
    }
  }
  delete(k: string): void {
    this.m.delete(k);
  }
  get size(): number {
    return this.m.size;
  }
}

/** An inline keyboard button as the Bot API defines it (callback, URL, Mini App ...). */
export type InlineButton = InlineKeyboardButton;

/**
 * Encodes choices as callback data. Commands too long for 64 bytes wait in the store under
 * `tg:cb:<key>` (JSON), so a tap answered by another process still finds them.
 */
export class CallbackCodec {
  constructor(
    private readonly store: Store,
    private readonly ttlMs: number,
  ) {}

  /** Callback data for a choice's command, bound to `owner` when known. */
  async encode(data: string, owner: string | undefined): Promise<string> {
    const prefix = owner ? `c|${uid36(owner)}|` : '';
    if (Buffer.byteLength(prefix + data) <= MAX_CALLBACK_BYTES) return prefix + data;
    const key = randomBytes(9).toString('base64url');
    await this.store.putEphemeral(`tg:cb:${key}`, JSON.stringify(data), this.ttlMs);
    return `k|${owner ? uid36(owner) : '0'}|${key}`;
  }

  /** The command behind a `k|…` button, or undefined when it expired. */
  async long(key: string): Promise<string | undefined> {
    if (!/^[A-Za-z0-9_-]{1,32}$/.test(key)) return undefined;
    const v = await this.store.getEphemeral(`tg:cb:${key}`);
    return v === undefined ? undefined : (JSON.parse(v) as string);
  }

  async button(choice: Choice, owner: string | undefined, allowWebApp: boolean): Promise<InlineButton> {
    if (choice.webAppUrl && allowWebApp) return { text: choice.label, web_app: { url: choice.webAppUrl } };
    if (choice.url || choice.webAppUrl) return { text: choice.label, url: (choice.url ?? choice.webAppUrl)! };
    return { text: choice.label, callback_data: await this.encode(choice.data ?? choice.label, owner) };
  }
}

/** Rows of one page of a long menu, plus the navigation row. */
export function pageRows<T>(rows: T[][], page: number, size: number): { rows: T[][]; page: number; pages: number } {
  const pages = Math.max(1, Math.ceil(rows.length / size));
  const p = Math.min(Math.max(0, page), pages - 1);
  return { rows: rows.slice(p * size, p * size + size), page: p, pages };
}
