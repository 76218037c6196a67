import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { escapeHtml, isNotModified, isParseError, markdownToHtml } from '../../channels/telegram/format.ts';
import { messageToInbound } from '../../channels/telegram/inbound.ts';
import { decodeCallback, CallbackCodec, pageRows } from '../../channels/telegram/callbacks.ts';
import { commandList } from '../../channels/telegram/commands.ts';
import { FileStore } from '../../src/store/file-store.ts';

describe('telegram format', () => {
  it('escapes HTML and converts the Markdown models write', () => {
    expect(escapeHtml('<a & b>')).toBe('&lt;a &amp; b&gt;');
    expect(markdownToHtml('**bold** and *it* and `x<y`')).toBe('<b>bold</b> and <i>it</i> and <code>x&lt;y</code>');
    expect(markdownToHtml('# Title\n- one\n[link](https://e.com/?a=1&b=2)')).toBe('<b>Title</b>\n• one\n<a href="https://e.com/?a=1&amp;b=2">link</a>');
    expect(markdownToHtml('```ts\nconst a = 1 < 2;\n```')).toBe('<pre><code class="language-ts">const a = 1 &lt; 2;</code></pre>');
    // A fence still open while streaming renders as code to the end.
    expect(markdownToHtml('text\n```py\nprint(1)')).toBe('text\n<pre><code class="language-py">print(1)</code></pre>');
    expect(markdownToHtml('snake_case_name and 2*3*4')).toBe('snake_case_name and 2*3*4');
  });

  it('recognises Telegram parse and not-modified errors', () => {
    expect(isParseError({ error_code: 400, description: "Bad Request: can't parse entities: Unsupported start tag" })).toBe(true);
    expect(isParseError({ error_code: 400, description: 'Bad Request: chat not found' })).toBe(false);
    expect(isNotModified({ description: 'Bad Request: message is not modified' })).toBe(true);
  });
});

describe('telegram update mapping', () => {
  const from = { id: 42, is_bot: false as const, first_name: 'Li', language_code: 'zh-hans' };
  it('maps text, captions, edits, forwards; private and group workspaces; language', () => {
    const t = messageToInbound({ update_id: 1, message: { message_id: 5, date: 1, chat: { id: 42, type: 'private', first_name: 'Li' }, from, text: 'hi' } })!;
    expect(t).toMatchObject({ channel: 'telegram', workspace: 'tg:42', isPrivate: true, lang: 'zh', kind: 'text', text: 'hi', messageId: '5', senderId: '42' });
    expect(t.chat).toEqual({ channel: 'telegram', chat_id: '42', user_id: '42', lang: 'zh' });
    expect(t.groupWorkspace).toBeUndefined();
    const c = messageToInbound({ update_id: 2, message: { message_id: 6, date: 1, chat: { id: -100, type: 'supergroup', title: 'Team' }, from: { id: 7, is_bot: false, first_name: 'Qi' }, caption: 'cap' } })!;
    expect(c).toMatchObject({ kind: 'caption', text: 'cap', workspace: 'tg:7', groupWorkspace: 'tg:group:-100', isPrivate: false, lang: undefined });
    const e = messageToInbound({ update_id: 3, edited_message: { message_id: 6, date: 1, edit_date: 2, chat: { id: 42, type: 'private', first_name: 'Li' }, from, text: 'edited' } })!;
    expect(e.kind).toBe('edited');
    const f = messageToInbound({ update_id: 4, message: { message_id: 7, date: 1, chat: { id: 42, type: 'private', first_name: 'Li' }, from, text: 'fwd', forward_origin: { type: 'user', date: 1, sender_user: { id: 9, is_bot: false, first_name: 'Fu' } } } })!;
    expect(f.kind).toBe('forwarded');
    expect(messageToInbound({ update_id: 5, message: { message_id: 8, date: 1, chat: { id: 42, type: 'private', first_name: 'Li' }, from } })).toBeUndefined();
    expect(messageToInbound({ update_id: 6, message: { message_id: 9, date: 1, chat: { id: -1, type: 'group', title: 'Team' }, from, text: '/model@OtherBot' } }, 'MyBot')).toMatchObject({ addressed_to_bot: false });
    expect(messageToInbound({ update_id: 7, message: { message_id: 9, date: 1, chat: { id: -1, type: 'group', title: 'Team' }, from, text: '/model@mybot' } }, 'MyBot')).toMatchObject({ addressed_to_bot: true });
    // A key sent along a command for another bot still reaches the guard (to be deleted).
    const keyed = `/ask@OtherBot sk-ant-api03-${'Q7vZ2xK9mW4pL8nR3tY6uB1cE5hJ0dF'.repeat(3)}AA`;
    expect(messageToInbound({ update_id: 9, message: { message_id: 10, date: 1, chat: { id: -1, type: 'group', title: 'Team' }, from, text: keyed } }, 'MyBot')).toBeDefined();
    expect(messageToInbound({ update_id: 8, message: { message_id: 9, date: 1, chat: { id: 1, type: 'private', first_name: 'Li' }, from: { id: 1, is_bot: true, first_name: 'Other' }, text: 'x' } })).toBeUndefined();
  });

  it('encodes callback data within 64 bytes, bound to the user; long commands wait in the store', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'byok-tgcodec-'));
    const codec = new CallbackCodec(new FileStore(dir), 60_000);
    const short = await codec.encode('/model custom/qwen-plus-e3f4', '123456789');
    expect(Buffer.byteLength(short)).toBeLessThanOrEqual(64);
    expect(decodeCallback(short)).toEqual({ kind: 'choice', owner: '123456789', data: '/model custom/qwen-plus-e3f4' });
    const long = await codec.encode('/model openrouter/anthropic/claude-3.7-sonnet:thinking-extended', '123456789');
    expect(Buffer.byteLength(long)).toBeLessThanOrEqual(64);
    const d = decodeCallback(long);
    expect(d.kind).toBe('long');
    if (d.kind === 'long') expect(await codec.long(d.key)).toContain('claude');
    // Another codec on the same store (another process) finds it too.
    if (d.kind === 'long') expect(await new CallbackCodec(new FileStore(dir), 60_000).long(d.key)).toBe('/model openrouter/anthropic/claude-3.7-sonnet:thinking-extended');
    expect(await codec.long('missing')).toBeUndefined();
    fs.rmSync(dir, { recursive: true, force: true });
    expect(decodeCallback('/byok key x')).toEqual({ kind: 'command', data: '/byok key x' });
    expect(decodeCallback('p|3f|2')).toEqual({ kind: 'page', owner: String(parseInt('3f', 36)), page: 2 });
    expect(decodeCallback('garbage')).toEqual({ kind: 'invalid' });
    expect(pageRows([[1], [2], [3]], 5, 2)).toEqual({ rows: [[3]], page: 1, pages: 2 });
  });

  it('has the command list in English and Chinese', () => {
    expect(commandList('en').map((c) => c.command)).toEqual(['start', 'help', 'model', 'byok', 'reset', 'lang']);
    expect(commandList('zh')[2].description).toMatch(/模型/);
  });
});
