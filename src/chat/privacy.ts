import type { CustomModel } from '../registry/index.ts';
import { getTemplate } from '../vendors/templates.ts';
import type { ChatState } from './state.ts';

/**
 * A conversation does not silently follow a switch to another vendor: someone who chose a
 * NEAR AI TEE model for privacy must not have that history sent to the next vendor. The
 * vendor is where the messages go, so it is the base URL's host (two Qwen regions are two
 * places; a platform model through OpenRouter is OpenRouter).
 */
export interface Destination {
  host: string;
  /** Shown to the user: the template's name (a fixed-host template), else the host. */
  name: string;
}

/** A parked conversation can be brought back with `/model <id> keep` for this long. */
export const PARKED_TTL_MS = 30 * 60_000;

export function destinationOf(model: CustomModel | undefined): Destination | undefined {
  if (!model) return undefined;
  let host: string;
  try {
    host = new URL(model.base_url).host;
  } catch {
    host = model.base_url;
  }
  const tpl = model.vendor === 'platform' ? undefined : getTemplate(model.vendor);
  // A template without a base URL (openai-compatible, Azure, HF endpoints) is the user's own
  // endpoint: two of them are two places, named by their hosts.
  return { host, name: tpl && tpl.base_url !== null ? tpl.name : host };
}

export type SwitchHistory = 'same' | 'fresh' | 'kept' | 'empty';

/**
 * Applies a model switch to the chat's history (inside the state update). Same host: kept
 * as it is. Another host (or an unknown old one): parked and the new model starts fresh,
 * unless `keep` — then the history (or the one parked by the switch just before) goes along.
 */
export function switchHistory(s: ChatState, from: Destination | undefined, to: Destination, keep: boolean, now = Date.now()): SwitchHistory {
  const parked = s.parked && now - Date.parse(s.parked.at) <= PARKED_TTL_MS ? s.parked : undefined;
  if (s.parked && !parked) delete s.parked;
  if (keep && !s.history.length && parked) {
    s.history = parked.history;
    delete s.parked;
    return 'kept';
  }
  if (!s.history.length) return 'empty';
  if (from && from.host === to.host) return 'same';
  if (keep) {
    delete s.parked;
    return 'kept';
  }
  s.parked = { history: s.history, from: from?.name ?? '', at: new Date(now).toISOString() };
  s.history = [];
  return 'fresh';
}

/** `/model <id> keep` (or 保留): the switch carries the conversation along. */
export function splitKeep(arg: string): { arg: string; keep: boolean } {
  const m = /^(.*?)\s+(?:keep|保留)$/i.exec(arg.trim());
  return m ? { arg: m[1]!, keep: true } : { arg, keep: false };
}
