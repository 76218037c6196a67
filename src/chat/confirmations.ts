import { randomBytes } from 'node:crypto';
import type { Store } from '../store/types.ts';

/** A destructive /byok action waiting for the user's yes. */
export type PendingAction = { kind: 'delete_key'; env_var: string; env_vars: string[] } | { kind: 'forget' };

/** How long a confirmation question stays answerable. */
export const CONFIRM_TTL_MS = 5 * 60_000;

interface Stored {
  nonce: string;
  action: PendingAction;
  /** ms since the epoch when it lapses (to put back an unmatched take with its remaining time). */
  exp: number;
}

/**
 * Confirmations of destructive actions (/byok key delete, /byok forget), one per workspace,
 * in the store with a TTL: the tap or `/byok confirm` may reach another process than the
 * question did. Taking it is atomic (takeEphemeral), so two taps, or two processes, act once.
 * Each question has a nonce that its button carries: a stale button cannot confirm a newer
 * question; a typed `/byok confirm` confirms the latest.
 */
export class Confirmations {
  constructor(
    private readonly store: Pick<Store, 'putEphemeral' | 'getEphemeral' | 'takeEphemeral' | 'deleteEphemeral'>,
    private readonly ttlMs = CONFIRM_TTL_MS,
  ) {}

  private key(ws: string): string {
    return `confirm:${ws}`;
  }

  /** Records the question (replacing any earlier one); returns the nonce for the button. */
  async ask(ws: string, action: PendingAction): Promise<string> {
    const nonce = randomBytes(5).toString('hex');
    const v: Stored = { nonce, action, exp: Date.now() + this.ttlMs };
    await this.store.putEphemeral(this.key(ws), JSON.stringify(v), this.ttlMs);
    return nonce;
  }

  async has(ws: string): Promise<boolean> {
    return (await this.store.getEphemeral(this.key(ws))) !== undefined;
  }

  /**
   * Takes the pending action (once). With a nonce, only the question it belongs to: another
   * one is put back untouched and undefined is returned.
   */
  async take(ws: string, nonce?: string): Promise<PendingAction | undefined> {
    const raw = await this.store.takeEphemeral(this.key(ws));
    if (raw === undefined) return undefined;
    let v: Stored;
    try {
      v = JSON.parse(raw) as Stored;
    } catch {
      return undefined;
    }
    if (nonce !== undefined && v.nonce !== nonce) {
      const left = v.exp - Date.now();
      if (left > 0) await this.store.putEphemeral(this.key(ws), raw, left);
      return undefined;
    }
    return v.action;
  }

  /** True when a question was pending. */
  async cancel(ws: string): Promise<boolean> {
    return (await this.store.takeEphemeral(this.key(ws))) !== undefined;
  }
}
