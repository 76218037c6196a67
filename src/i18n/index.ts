import { en, type MessageKey } from './en.ts';
import { zh } from './zh.ts';

export type Lang = 'en' | 'zh';
export type { MessageKey };

const catalogues: Record<Lang, Record<MessageKey, string>> = { en, zh };

/** Looks up a message and fills `{name}` placeholders. Unknown placeholders stay visible. */
export function t(lang: Lang, key: MessageKey, params: Record<string, string | number> = {}): string {
  const text = catalogues[lang][key] ?? en[key];
  return text.replace(/\{(\w+)\}/g, (m, name: string) => (name in params ? String(params[name]) : m));
}

/** `zh*` language codes (zh, zh-hans, zh-CN, zh-TW) get Chinese, everything else English. */
export function langFromCode(code: string | undefined, fallback: Lang = 'en'): Lang {
  if (!code) return fallback;
  return /^zh\b/i.test(code) ? 'zh' : 'en';
}

export function catalogue(lang: Lang): Readonly<Record<MessageKey, string>> {
  return catalogues[lang];
}

export const LANGS: readonly Lang[] = ['en', 'zh'];
