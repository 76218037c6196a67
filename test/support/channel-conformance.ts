import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChannelAdapter, InboundMessage, KeyResult } from '../../src/channel.ts';
import { isGroupAdmin } from '../../src/chat/commands/group.ts';
import type { ChannelRef } from '../../src/queue/types.ts';
import { waitFor } from './form.ts';

/**
 * One contract suite for every channel (shell, Telegram, WeChat, the tests' recording
 * channel), run against each through its real platform path (a terminal stream, the Bot API
 * emulator, the Wechaty mock puppet). A capability a channel declares must work; one it lacks
 * must be absent (the core then falls back: send for key results, its own loop for streams,
 * no admin for group settings).
 */
export interface ChannelHarness {
  adapter: ChannelAdapter;
  /** The private chat with the test user, and a group the user and the bot are in (if the channel has groups). */
  privateChat: ChannelRef;
  groupChat?: ChannelRef;
  /** A group message the platform delivers that is not for the bot (chatter, a command for another bot). */
  unaddressedInGroup?: string;
  /** What the user sees in that chat now, oldest first: texts, with button labels and links. */
  seen(chat: ChannelRef): Promise<string[]>;
  /** The user sends `text` through the platform; resolves with what the adapter handed the core. */
  userSays(text: string, where: 'private' | 'group'): Promise<InboundMessage>;
  /** Whether the platform removed the user's message (channels that can delete). */
  deletedOnPlatform?(msg: InboundMessage): Promise<boolean>;
  close(): Promise<void>;
}

/** A one-time URL: 200 the first time, 410 after (what a secure-form link does). */
async function oneTimeServer(): Promise<{ url: (id: string) => string; close(): Promise<void> }> {
  const used = new Set<string>();
  const server = http.createServer((req, res) => {
    const id = req.url ?? '';
    if (used.has(id)) return void res.writeHead(410).end('gone');
    used.add(id);
    res.writeHead(200, { 'content-type': 'text/plain' }).end('form');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return { url: (id) => `http://127.0.0.1:${port}/s/${id}`, close: () => new Promise((r) => server.close(() => r())) };
}

const seenSince = async (h: ChannelHarness, chat: ChannelRef, before: number, what: string): Promise<string> => {
  let now: string[] = [];
  await waitFor(async () => (now = await h.seen(chat)).length > before, 5000, what);
  return now.slice(before).join('\n');
};

export function channelConformance(name: string, make: () => Promise<ChannelHarness>): void {
  describe(`channel conformance: ${name}`, () => {
    let h: ChannelHarness;
    let links: Awaited<ReturnType<typeof oneTimeServer>>;
    beforeAll(async () => {
      h = await make();
      links = await oneTimeServer();
    }, 30_000);
    afterAll(async () => {
      await h?.close();
      await links?.close();
    });

    it('declares a name and capabilities that match the methods it has', () => {
      const a = h.adapter;
      expect(a.name).toMatch(/^[a-z][a-z0-9_-]*$/);
      expect(a.capabilities.maxMessageLength).toBeGreaterThan(100);
      expect(typeof a.edit === 'function').toBe(a.capabilities.editMessages);
      expect(typeof a.deleteInbound === 'function').toBe(a.capabilities.deleteInbound);
    });

    it('hands the core every message with addressed_to_bot; a private message is addressed', async () => {
      const m = await h.userSays('hello there', 'private');
      expect(m).toMatchObject({ channel: h.adapter.name, isPrivate: true, addressed_to_bot: true, text: 'hello there' });
      expect(m.chat.channel).toBe(h.adapter.name);
      expect(m.workspace.length).toBeGreaterThan(0);
    });

    it('passes a group message not addressed to the bot on, marked, for the core key guard', async () => {
      if (!h.unaddressedInGroup) {
        // A channel without group chats (the shell): nothing can reach it unaddressed.
        expect(h.groupChat).toBeUndefined();
        return;
      }
      const m = await h.userSays(h.unaddressedInGroup, 'group');
      expect(m).toMatchObject({ isPrivate: false, addressed_to_bot: false, text: h.unaddressedInGroup });
    });

    it('send: the user sees the text and every choice', async () => {
      const before = (await h.seen(h.privateChat)).length;
      const ref = await h.adapter.send(h.privateChat, { text: 'conformance ping', choices: [[{ label: 'Pick me', data: '/model 1' }]] });
      expect(ref.messageId).toBeTruthy();
      const got = await seenSince(h, h.privateChat, before, 'sent message');
      expect(got).toContain('conformance ping');
      expect(got).toContain('Pick me');
    });

    it('edit (where capable): the user sees the new text in place of the old', async () => {
      if (!h.adapter.capabilities.editMessages || !h.adapter.edit) {
        // Not capable, and declared so: the core sends a new message instead of editing.
        expect(h.adapter.capabilities.editMessages).toBe(false);
        expect(h.adapter.edit).toBeUndefined();
        return;
      }
      const before = (await h.seen(h.privateChat)).length;
      const ref = await h.adapter.send(h.privateChat, { text: 'before the edit' });
      await seenSince(h, h.privateChat, before, 'message to edit');
      await h.adapter.edit(ref, { text: 'after the edit' });
      const now = (await h.seen(h.privateChat)).join('\n');
      expect(now).toContain('after the edit');
      expect(now).not.toContain('before the edit');
    });

    it('delete inbound (where capable): the user message is removed on the platform', async () => {
      if (!h.adapter.capabilities.deleteInbound || !h.adapter.deleteInbound) {
        // Not capable, and declared so: the core asks the user to delete the message.
        expect(h.adapter.capabilities.deleteInbound).toBe(false);
        expect(h.adapter.deleteInbound).toBeUndefined();
        return;
      }
      const m = await h.userSays('a message to delete', 'private');
      expect(await h.adapter.deleteInbound(m)).toBe(true);
      expect(await h.deletedOnPlatform!(m)).toBe(true);
    });

    it('requestEnvInput: the user gets the form with a working one-time link', async () => {
      const url = links.url(`tok-${name}`);
      const before = (await h.seen(h.privateChat)).length;
      const ref = await h.adapter.requestEnvInput(h.privateChat, {
        workspace: 'conformance',
        model_id: 'qwen-plus-c0f0',
        vendor: 'qwen',
        vendor_name: 'Qwen',
        model_name: 'Qwen Plus (qwen-plus)',
        env_vars: ['DASHSCOPE_API_KEY'],
        reason: 'DashScope API key for Qwen Plus',
        url,
        expires_at: new Date(Date.now() + 900_000).toISOString(),
        lang: 'en',
      });
      expect(ref.messageId).toBeTruthy();
      const got = await seenSince(h, h.privateChat, before, 'form prompt');
      const shown = got.match(/https?:\/\/[^\s"'<>)\]]+/g) ?? [];
      expect(shown).toContain(url);
      expect((await fetch(url)).status).toBe(200);
      expect((await fetch(url)).status).toBe(410);
    });

    it('key result: the user sees the outcome (the channel way, or the core default: a plain send)', async () => {
      const result: KeyResult = { workspace: 'conformance', model_id: 'qwen-plus-c0f0', outcome: 'ok', text: 'Key accepted for Qwen Plus ****WXYZ', masked: '****WXYZ', vendor_name: 'Qwen', model_name: 'Qwen Plus', lang: 'en' };
      const before = (await h.seen(h.privateChat)).length;
      if (h.adapter.keyResult) await h.adapter.keyResult(h.privateChat, result);
      else await h.adapter.send(h.privateChat, { text: result.text });
      // Telegram turns the form card into a result card; the others send the text.
      await waitFor(async () => (await h.seen(h.privateChat)).join('\n').includes('****WXYZ'), 5000, 'key result');
      expect((await h.seen(h.privateChat)).length).toBeGreaterThanOrEqual(before);
      expect((await h.seen(h.privateChat)).join('\n')).toContain('Qwen Plus');
    });

    it('stream (where capable): the whole answer arrives and is returned', async () => {
      if (!h.adapter.streamReply) {
        // No streaming of its own: the relay's send(-then-edit) path is used, covered by send/edit above.
        expect(h.adapter.streamReply).toBeUndefined();
        return;
      }
      async function* chunks() {
        for (const c of ['Streamed ', 'answer ', 'in ', 'parts.']) yield c;
      }
      const full = await h.adapter.streamReply(h.privateChat, chunks(), 'en');
      expect(full).toBe('Streamed answer in parts.');
      await waitFor(async () => (await h.seen(h.privateChat)).join('\n').includes('Streamed answer in parts.'), 5000, 'streamed answer');
    });

    it('private link (where capable): a URL that continues in the private chat', async () => {
      if (!h.adapter.privateChatLink) {
        // No deep links: the core tells group users to write to the bot privately instead.
        expect(h.adapter.privateChatLink).toBeUndefined();
        return;
      }
      const link = h.adapter.privateChatLink('byok_add_qwen');
      expect(link).toBeDefined();
      expect(new URL(link!).protocol).toBe('https:');
      expect(link).toContain('byok_add_qwen');
    });

    it('admin check: private chats pass; a plain group member does not; no check fails closed', async () => {
      const priv = await h.userSays('/group', 'private');
      expect(await isGroupAdmin({ msg: priv, adapter: h.adapter })).toBe(true);
      if (!h.groupChat) return;
      const inGroup = await h.userSays('/group add qwen', 'group');
      expect(inGroup).toMatchObject({ isPrivate: false, addressed_to_bot: true });
      expect(await isGroupAdmin({ msg: inGroup, adapter: h.adapter })).toBe(false);
      // The same channel without its admin check: nobody is a group admin.
      const without = Object.assign(Object.create(h.adapter) as ChannelAdapter, { isGroupAdmin: undefined });
      expect(await isGroupAdmin({ msg: inGroup, adapter: without })).toBe(false);
    });
  });
}
