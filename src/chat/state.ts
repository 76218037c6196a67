import type { Store } from '../store/types.ts';
import type { ChatMessage } from '../vendors/types.ts';
import type { ExampleDraft } from '../registry/parse-example.ts';
import type { Lang } from '../i18n/index.ts';

/** Per-chat state: the chosen model, bounded history, and a pending multi-step action. */
export interface ChatState {
  /** `custom/<id>` or a platform model id. */
  model?: string;
  /** Workspace that owns a custom model chosen for a group (the admin who chose it). */
  model_owner?: string;
  history: ChatMessage[];
  pending?: { kind: 'await_example'; at: string } | { kind: 'confirm_example'; draft: ExampleDraft; at: string };
}

export interface Prefs {
  lang?: Lang;
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
}

export function trimHistory(history: ChatMessage[]): void {
  while (history.length > HISTORY_MAX_MESSAGES) history.splice(0, 2);
  let total = history.reduce((n, m) => n + m.content.length, 0);
  while (history.length > 2 && total > HISTORY_MAX_CHARS) {
    const [a, b] = history.splice(0, 2);
    total -= a.content.length + (b?.content.length ?? 0);
  }
}
