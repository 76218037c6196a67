import type { Store } from '../store/types.ts';
import type { ChatMessage } from '../vendors/types.ts';
import type { ExampleDraft } from '../registry/parse-example/index.ts';
import type { Lang } from '../i18n/index.ts';

/** Per-chat state: the chosen model, bounded history, and a pending multi-step action. */
export interface ChatState {
  /** `custom/<id>` or a platform model id. */
  model?: string;
  /** Workspace that owns a custom model chosen for a group (the admin who chose it). */
  model_owner?: string;
  history: ChatMessage[];
  /** History set aside by a switch to another vendor (src/chat/privacy.ts); `/model <id> keep` brings it back. */
  parked?: { history: ChatMessage[]; from: string; at: string };
  pending?: { kind: 'await_example'; at: string } | { kind: 'confirm_example'; draft: ExampleDraft; at: string } | PendingAdd;
}

/** What `/byok add <vendor>` asks for, one question at a time (src/chat/commands/add.ts). */
export type AddField = 'base_url' | 'upstream_model' | 'api_version';

/**
 * A `/byok add` waiting for the answer to one question. Kept in the Store with the rest of the
 * chat state, so the answer may reach any process.
 */
export interface PendingAdd {
  kind: 'add_field';
  vendor: string;
  asking: AddField;
  /** What is known so far (from the command line and earlier answers). */
  have: { base_url?: string; upstream_model?: string; name?: string; query?: Record<string, string>; settings?: Record<string, string> };
  at: string;
}

export interface Prefs {
  lang?: Lang;
  /** `/model default`: the model a chat of this user uses until one is chosen (a selector). */
  default_model?: string;
  /** `/think`: the thinking choice per model selector, for chats of this scope. */
  thinking?: Record<string, ThinkingChoice>;
  /** `/tz`: IANA time zone for the times shown to the user (see time.ts). */
  tz?: string;
}

/** On or off, with a budget in tokens where the vendor takes one. */
export interface ThinkingChoice {
  on: boolean;
  budget?: number;
}

export const HISTORY_MAX_MESSAGES = 20;
export const HISTORY_MAX_CHARS = 24_000;
/** A pending /byok example step is forgotten after this long. */
export const PENDING_TTL_MS = 10 * 60_000;

export class ChatStateStore {
  constructor(private readonly store: Store) {}

  async get(scope: string): Promise<ChatState> {
    return (await this.store.getDoc<ChatState>(scope, 'chat')) ?? { history: [] };
  }

  async update<R>(scope: string, fn: (s: ChatState) => R): Promise<R> {
    return this.store.updateDoc<ChatState, R>(scope, 'chat', (cur) => {
      const s = cur ?? { history: [] };
      const result = fn(s);
      return { value: s, result };
    });
  }

  /** Appends a user/assistant exchange and trims to the bounds (oldest first). */
  async appendExchange(scope: string, user: string, assistant: string): Promise<void> {
    await this.update(scope, (s) => {
      s.history.push({ role: 'user', content: user }, { role: 'assistant', content: assistant });
      trimHistory(s.history);
    });
  }

  async getPrefs(workspace: string): Promise<Prefs> {
    return (await this.store.getDoc<Prefs>(workspace, 'prefs')) ?? {};
  }

  async setLang(workspace: string, lang: Lang): Promise<void> {
    await this.store.updateDoc<Prefs, void>(workspace, 'prefs', (cur) => ({ value: { ...(cur ?? {}), lang }, result: undefined }));
  }

  /** undefined clears the default. */
  async setDefaultModel(workspace: string, selector: string | undefined): Promise<void> {
    await this.updatePrefs(workspace, (p) => {
      if (selector) p.default_model = selector;
      else delete p.default_model;
    });
  }

  /** undefined forgets the choice (the model's own default applies again). */
  async setThinking(scope: string, selector: string, choice: ThinkingChoice | undefined): Promise<void> {
    await this.updatePrefs(scope, (p) => {
      const all = { ...(p.thinking ?? {}) };
      if (choice) all[selector] = choice;
      else delete all[selector];
      p.thinking = all;
    });
  }

  /** A locked read-modify-write of the prefs document (every process sees the same). */
  async updatePrefs(workspace: string, fn: (p: Prefs) => void): Promise<void> {
    await this.store.updateDoc<Prefs, void>(workspace, 'prefs', (cur) => {
      const p: Prefs = { ...(cur ?? {}) };
      fn(p);
      return { value: p, result: undefined };
    });
  }
}

export function trimHistory(history: ChatMessage[]): void {
  while (history.length > HISTORY_MAX_MESSAGES) history.splice(0, 2);
  let total = history.reduce((n, m) => n + m.content.length, 0);
  while (history.length > 2 && total > HISTORY_MAX_CHARS) {
    const [a, b] = history.splice(0, 2);
    total -= a.content.length + (b?.content.length ?? 0);
  }
}
