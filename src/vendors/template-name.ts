import type { Lang } from '../i18n/index.ts';
import type { Template } from './template-schema.ts';
import { loadTemplates } from './templates.ts';

/** A template's display name in the user's language: `name_zh` for Chinese where it has one. */
export function templateName(t: Pick<Template, 'name' | 'name_zh'>, lang: Lang): string {
  return lang === 'zh' && t.name_zh ? t.name_zh : t.name;
}

/**
 * A display name recorded in English before the reader's language was known (a key notice
 * queued by the worker: "Qwen (…)" or "Qwen (…) (dashscope.aliyuncs.com)"), in `lang`.
 * Anything that is not a template's name (a host, a key name) stays as it is.
 */
export function localizeTemplateName(name: string, lang: Lang): string {
  if (lang === 'en') return name;
  const named = loadTemplates().filter((x) => name === x.name || name.startsWith(`${x.name} (`));
  const t = named.sort((a, b) => b.name.length - a.name.length)[0];
  return t ? templateName(t, lang) + name.slice(t.name.length) : name;
}
