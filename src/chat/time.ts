import { t, type Lang } from '../i18n/index.ts';
import type { Store } from '../store/types.ts';

/**
 * Times shown to a user, in their own time zone. One helper for every place a time reaches
 * a user (form links, /byok keys, key notices, usage), so the chat, the channels and the
 * notices agree. The zone is a per-user preference (`/tz`), else a default by language.
 */

/** Without a `/tz` of their own: Chinese users get Beijing time, everyone else UTC. */
export function defaultTimeZone(lang: Lang): string {
  return lang === 'zh' ? 'Asia/Shanghai' : 'UTC';
}

/** The canonical IANA name of a zone (`asia/shanghai` → `Asia/Shanghai`), or undefined when Intl does not know it. */
export function canonicalTimeZone(tz: string): string | undefined {
  const s = tz.trim();
  // Intl accepts odd spellings (offsets like "+08:00" on newer Node); only names are stored.
  if (!s || s.length > 64 || !/^[A-Za-z][A-Za-z0-9_+\-/]*$/.test(s)) return undefined;
  try {
    return new Intl.DateTimeFormat('en-US', { timeZone: s }).resolvedOptions().timeZone;
  } catch {
    return undefined;
  }
}

/** Zones shown by a name in the user's language instead of their IANA id. */
const BEIJING = new Set(['Asia/Shanghai', 'Asia/Chongqing', 'Asia/Chungking', 'Asia/Harbin', 'PRC']);

function zoneLabel(tz: string, lang: Lang): string {
  if (tz === 'UTC' || tz === 'Etc/UTC' || tz === 'Etc/GMT') return 'UTC';
  if (BEIJING.has(tz)) return t(lang, 'time.zone_beijing');
  return tz;
}

/**
 * `2026-05-02 04:30 北京时间`, `2026-05-01 20:30 UTC`, `2026-05-01 22:30 Europe/Berlin`:
 * minutes, the zone always named. An unknown zone falls back to the language's default.
 */
export function formatTime(date: string | number | Date, lang: Lang = 'en', tz?: string): string {
  const d = date instanceof Date ? date : new Date(date);
  if (!Number.isFinite(d.getTime())) return String(date);
  const zone = (tz && canonicalTimeZone(tz)) || defaultTimeZone(lang);
  const parts = new Intl.DateTimeFormat('en-CA', {
    timeZone: zone,
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    hourCycle: 'h23',
  }).formatToParts(d);
  const p = (type: Intl.DateTimeFormatPartTypes) => parts.find((x) => x.type === type)?.value ?? '';
  const time = `${p('year')}-${p('month')}-${p('day')} ${p('hour')}:${p('minute')}`;
  return t(lang, 'time.at', { time, zone: zoneLabel(zone, lang) });
}

interface TzPrefs {
  tz?: string;
}

/** The user's own zone (`/tz`), else the default for their language. */
export async function userTimeZone(store: Pick<Store, 'getDoc'>, workspace: string, lang: Lang): Promise<string> {
  const prefs = await store.getDoc<TzPrefs>(workspace, 'prefs');
  return (prefs?.tz && canonicalTimeZone(prefs.tz)) || defaultTimeZone(lang);
}

/** The stored `/tz`, if the user set one. */
export async function storedTimeZone(store: Pick<Store, 'getDoc'>, workspace: string): Promise<string | undefined> {
  const prefs = await store.getDoc<TzPrefs>(workspace, 'prefs');
  return prefs?.tz ? canonicalTimeZone(prefs.tz) : undefined;
}

/** Stores the zone next to the other preferences (the `prefs` document of chat state). */
export async function setTimeZone(store: Pick<Store, 'updateDoc'>, workspace: string, tz: string | undefined): Promise<void> {
  await store.updateDoc<TzPrefs & Record<string, unknown>, void>(workspace, 'prefs', (cur) => {
    const value = { ...(cur ?? {}) };
    if (tz) value.tz = tz;
    else delete value.tz;
    return { value, result: undefined };
  });
}

/**
 * `/tz` (show), `/tz Asia/Shanghai` (set), `/tz reset` (back to the default). Answers in
 * the user's language; the new zone is shown with the current time as a check.
 */
export async function tzCommand(store: Pick<Store, 'getDoc' | 'updateDoc'>, workspace: string, lang: Lang, arg: string, now = new Date()): Promise<string> {
  const a = arg.trim();
  if (!a) {
    const own = await storedTimeZone(store, workspace);
    const zone = own ?? defaultTimeZone(lang);
    return t(lang, own ? 'tz.current' : 'tz.current_default', { tz: zone, now: formatTime(now, lang, zone) });
  }
  if (/^(reset|default|clear|默认|重置)$/i.test(a)) {
    await setTimeZone(store, workspace, undefined);
    const zone = defaultTimeZone(lang);
    return t(lang, 'tz.reset', { tz: zone, now: formatTime(now, lang, zone) });
  }
  const zone = canonicalTimeZone(a);
  if (!zone) return t(lang, 'tz.invalid', { tz: a.slice(0, 64) });
  await setTimeZone(store, workspace, zone);
  return t(lang, 'tz.set', { tz: zone, now: formatTime(now, lang, zone) });
}
