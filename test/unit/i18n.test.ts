import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { en, type MessageKey } from '../../src/i18n/en.ts';
import { catalogue, langFromCode, LANGS, t } from '../../src/i18n/index.ts';
import { zh } from '../../src/i18n/zh.ts';

const placeholders = (s: string): string[] => [...new Set([...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1]))].sort();
const keys = Object.keys(en) as MessageKey[];

describe('message catalogues', () => {
  it('English and Chinese have exactly the same keys', () => {
    const enKeys = Object.keys(en).sort();
    const zhKeys = Object.keys(zh).sort();
    expect(zhKeys.filter((k) => !enKeys.includes(k)), 'keys only in zh').toEqual([]);
    expect(enKeys.filter((k) => !zhKeys.includes(k)), 'keys only in en').toEqual([]);
    expect(enKeys.length).toBeGreaterThan(50);
  });

  it('has no empty or whitespace-only texts', () => {
    for (const lang of LANGS) {
      const cat = catalogue(lang);
      const empty = keys.filter((k) => typeof cat[k] !== 'string' || cat[k].trim() === '');
      expect(empty, `empty texts in ${lang}`).toEqual([]);
    }
  });

  it('uses the same {placeholders} in both languages', () => {
    const mismatched = keys
      .filter((k) => placeholders(en[k]).join(',') !== placeholders(zh[k]).join(','))
      .map((k) => `${k}: en {${placeholders(en[k]).join(',')}} zh {${placeholders(zh[k]).join(',')}}`);
    expect(mismatched).toEqual([]);
  });

  it('the Chinese catalogue is actually Chinese (no untranslated English sentences)', () => {
    // A text identical in both languages is fine only when it has no words (emoji, labels like "« Prev" are not).
    const same = keys.filter((k) => en[k] === zh[k] && /[A-Za-z]{3,}\s+[A-Za-z]{3,}\s+[A-Za-z]{3,}/.test(en[k].replace(/\{\w+\}|<[^>]+>|\/\w+/g, '')));
    expect(same).toEqual([]);
    const cjk = keys.filter((k) => /[\u4e00-\u9fff]/.test(zh[k])).length;
    expect(cjk / keys.length).toBeGreaterThan(0.8);
  });

  it('t() fills every placeholder in both languages', () => {
    for (const lang of LANGS) {
      for (const k of keys) {
        const names = placeholders(en[k]);
        const params = Object.fromEntries(names.map((n, i) => [n, `«${n}${i}»`]));
        const out = t(lang, k, params);
        expect(out, `${lang} ${k}`).not.toMatch(/\{\w+\}/);
        for (const n of names) expect(out, `${lang} ${k}`).toContain(`«${n}`);
      }
    }
  });

  it('t() leaves unknown placeholders visible and accepts numbers', () => {
    const k = keys.find((x) => placeholders(en[x]).length > 0)!;
    const [first] = placeholders(en[k]);
    expect(t('en', k)).toContain(`{${first}}`);
    expect(t('zh', k, { [first]: 42 })).toContain('42');
  });

  it('the WeChat texts exist in both languages with what the user must see', () => {
    for (const lang of LANGS) {
      const prompt = t(lang, 'wechat.form_text', { vendor: 'V', model: 'M', reason: 'R', url: 'https://x.test/s/T', expires: 'E' });
      for (const part of ['V', 'M', 'R', 'https://x.test/s/T', 'E']) expect(prompt).toContain(part);
      expect(t(lang, 'wechat.key_exposed', { kinds: 'openai' })).toContain('openai');
      expect(t(lang, 'nontext.note').length).toBeGreaterThan(3);
    }
    expect(t('zh', 'wechat.form_text', {})).toMatch(/切勿|不要/);
    expect(t('en', 'wechat.form_text', {})).toMatch(/never/i);
  });

  it('maps language codes (zh* → zh, everything else en)', () => {
    expect(langFromCode('zh-hans')).toBe('zh');
    expect(langFromCode('zh-CN')).toBe('zh');
    expect(langFromCode('en-US')).toBe('en');
    expect(langFromCode(undefined, 'zh')).toBe('zh');
  });
});

/**
 * A light scan: channel adapters must take every user-facing sentence from the
 * catalogues. It flags string literals with words in them passed straight to a send-like
 * call, or given as a message `text:` — not log messages, errors or HTTP bodies for operators.
 */
describe('channel sources do not hard-code user-facing texts', () => {
  const root = path.resolve(import.meta.dirname, '../..');
  const files = (dir: string): string[] =>
    fs.existsSync(dir)
      ? fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
          const p = path.join(dir, e.name);
          if (e.isDirectory()) return files(p);
          return /\.ts$/.test(e.name) && !/\.d\.ts$/.test(e.name) ? [p] : [];
        })
      : [];
  const sources = files(path.join(root, 'channels')).filter((f) => !f.endsWith(`${path.sep}types.ts`));

  /** A literal that reads as a sentence: two or more words, or any CJK text. */
  const wordy = (lit: string): boolean => {
    const s = lit.replace(/\$\{[^}]*\}/g, ' ').replace(/https?:\/\/\S+/g, ' ');
    return /[\u4e00-\u9fff]/.test(s) || /[A-Za-z]{2,}[^A-Za-z\n]+[A-Za-z]{2,}[^A-Za-z\n]+[A-Za-z]{2,}/.test(s);
  };
  const LIT = String.raw`(?:'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*"|\x60(?:[^\x60\\]|\\.)*\x60)`;
  const patterns = [
    // adapter.send(chat, { text: '...' }), ctx.reply('...'), bot.api.sendMessage(id, '...'), contact.say('...')
    new RegExp(String.raw`\.(?:send|sendText|sendMessage|reply|say|messageSendText|answerCallbackQuery|editMessageText)\(\s*(?:[\w.\[\]'"]+\s*,\s*)?(${LIT})`, 'g'),
    new RegExp(String.raw`\btext\s*:\s*(${LIT})`, 'g'),
  ];

  it('finds the channel sources', () => {
    expect(sources.some((f) => f.includes(`${path.sep}wechat${path.sep}`))).toBe(true);
  });

  it('has no sentence literals in send calls', () => {
    const hits: string[] = [];
    for (const f of sources) {
      const src = fs.readFileSync(f, 'utf8').replace(/^\s*(\/\/|\*).*$/gm, '');
      for (const re of patterns) {
        for (const m of src.matchAll(re)) {
          if (wordy(m[1].slice(1, -1))) hits.push(`${path.relative(root, f)}: ${m[0].slice(0, 120)}`);
        }
      }
    }
    expect(hits).toEqual([]);
  });

  it('the scan itself catches a hard-coded reply', () => {
    const bad = `await this.send(chat, { text: 'I can only read text messages.' }); ctx.reply('请稍后再试');`;
    const found = patterns.flatMap((re) => [...bad.matchAll(re)].map((m) => m[1])).filter((l) => wordy(l.slice(1, -1)));
    expect(found).toHaveLength(2);
    const ok = `await this.send(chat, { text: t(lang, 'nontext.note') }); logger.info('wechat: logged in');`;
    expect(patterns.flatMap((re) => [...ok.matchAll(re)].map((m) => m[1])).filter((l) => wordy(l.slice(1, -1)))).toEqual([]);
  });
});
