import { randomBytes } from 'node:crypto';
import type { ChannelRef } from '../queue/types.ts';
import type { Store } from '../store/types.ts';
import type { SubmissionContext } from './server.ts';

/**
 * Sealed submissions waiting for validation. Each holds only crypto_box_seal boxes (opened
 * by the worker with its box key) and references; it stays in the store until the vendor
 * gives a definite answer, so a vendor outage never loses a submitted key.
 */
export interface Submission {
  id: string;
  model_id: string;
  key_id: string;
  /** env var → base64 sealed box */
  sealed: Record<string, string>;
  token_hash: string;
  channel: ChannelRef;
  lang: 'en' | 'zh';
  created_at: string;
  attempts_rounds: number;
  /** Expiry chosen on the form, in days; absent or null: never. */
  expires_in_days?: number | null;
  /** Gemini CLI: the Google Cloud project id given beside the credentials file (not secret). */
  project_id?: string;
}

/** What a form POST hands to `Submissions.add` (the fields of `SubmissionContext`, boxes as base64). */
export function submissionFields(ctx: SubmissionContext): Omit<Submission, 'id' | 'created_at' | 'attempts_rounds'> {
  const sealed: Record<string, string> = {};
  for (const [env, box] of Object.entries(ctx.boxes)) sealed[env] = Buffer.from(box).toString('base64');
  return {
    model_id: ctx.record.model_id,
    key_id: ctx.key_id,
    sealed,
    token_hash: ctx.token_hash,
    channel: ctx.record.channel,
    lang: ctx.record.lang,
    ...(ctx.expires_in_days !== undefined ? { expires_in_days: ctx.expires_in_days } : {}),
    ...(ctx.project_id !== undefined ? { project_id: ctx.project_id } : {}),
  };
}

type SubmissionsDoc = Record<string, Submission>;
const DOC = 'submissions';
/** A model keeps at most its latest submission: a fresh form replaces an older pending one. */
export class Submissions {
  constructor(private readonly store: Store) {}

  async add(workspace: string, s: Omit<Submission, 'id' | 'created_at' | 'attempts_rounds'>): Promise<Submission> {
    const sub: Submission = { ...s, id: randomBytes(12).toString('hex'), created_at: new Date().toISOString(), attempts_rounds: 1 };
    await this.store.updateDoc<SubmissionsDoc, void>(workspace, DOC, (cur) => {
      const doc = { ...(cur ?? {}) };
      for (const [id, old] of Object.entries(doc)) if (old.model_id === s.model_id) delete doc[id];
      doc[sub.id] = sub;
      return { value: doc, result: undefined };
    });
    return sub;
  }

  async get(workspace: string, id: string): Promise<Submission | undefined> {
    return (await this.store.getDoc<SubmissionsDoc>(workspace, DOC))?.[id];
  }

  async list(workspace: string): Promise<Submission[]> {
    return Object.values((await this.store.getDoc<SubmissionsDoc>(workspace, DOC)) ?? {});
  }

  /** Workspaces holding pending submissions (the start-up sweep). */
  workspaces(): Promise<string[]> {
    return this.store.listScopes(DOC);
  }

  async forModel(workspace: string, modelId: string): Promise<Submission | undefined> {
    const doc = (await this.store.getDoc<SubmissionsDoc>(workspace, DOC)) ?? {};
    return Object.values(doc).find((s) => s.model_id === modelId);
  }

  async bumpRound(workspace: string, id: string): Promise<void> {
    await this.store.updateDoc<SubmissionsDoc, void>(workspace, DOC, (cur) => {
      if (!cur?.[id]) return { value: cur, result: undefined };
      return { value: { ...cur, [id]: { ...cur[id], attempts_rounds: cur[id].attempts_rounds + 1 } }, result: undefined };
    });
  }

  /** Removes the submission; true when this call removed it (so only one finisher acts). */
  async remove(workspace: string, id: string): Promise<boolean> {
    return this.store.updateDoc<SubmissionsDoc, boolean>(workspace, DOC, (cur) => {
      if (!cur?.[id]) return { value: cur, result: false };
      const doc = { ...cur };
      delete doc[id];
      return { value: Object.keys(doc).length ? doc : undefined, result: true };
    });
  }
}
