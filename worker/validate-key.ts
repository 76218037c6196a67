import type { Logger } from '../src/log.ts';
import { JOB_NOTIFY, UnrecoverableError, type JobContext, type JobRunner, type NotifyPayload, type ValidateKeyPayload } from '../src/queue/types.ts';
import type { Registry } from '../src/registry/registry.ts';
import { maskKey } from '../src/secrets/mask.ts';
import type { Vault } from '../src/secrets/vault.ts';
import type { Submissions } from '../src/secure-input/submissions.ts';
import type { EnvInputRequests } from '../src/secure-input/tokens.ts';
import { WHAT_TO_DO } from '../src/vendors/classify.ts';
import type { ProbeResult, Secrets, VendorOutcome } from '../src/vendors/types.ts';
import { getWire } from '../src/vendors/wires/index.ts';
import { isByokError } from '../src/errors.ts';

export interface BoxOpener {
  open(keyId: string, sealed: Uint8Array): Promise<Uint8Array>;
}

export interface ValidateDeps {
  registry: Registry;
  vault: Vault;
  boxKeys: BoxOpener;
  submissions: Submissions;
  requests: EnvInputRequests;
  /** Where `notify` jobs go (the bot processes consume them). */
  notifyQueue: Pick<JobRunner, 'enqueue'>;
  logger: Logger;
  probe?: (model: Parameters<ReturnType<typeof getWire>['probe']>[0], secrets: Secrets) => Promise<ProbeResult>;
}

const DEFINITE: ReadonlySet<VendorOutcome> = new Set(['invalid_key', 'invalid_model', 'quota_exceeded', 'rejected']);

/** A transient vendor failure: the runner retries it with backoff. */
export class TransientVendorError extends Error {
  constructor(
    readonly outcome: VendorOutcome,
    readonly retryAfterMs?: number,
  ) {
    super(`vendor answered ${outcome}`);
    this.name = 'TransientVendorError';
  }
}

/**
 * validate-key: open the sealed submission, probe the vendor, and store the key sealed only
 * when the vendor accepts it. Idempotent per submission: a job that runs again after a
 * crash finds the submission gone (already finished) or finishes it once.
 */
export function validateKeyHandler(deps: ValidateDeps) {
  const probe = deps.probe ?? ((model, secrets) => getWire(model.wire).probe(model, secrets));
  return async (job: ValidateKeyPayload, _ctx: JobContext): Promise<string> => {
    const { workspace, submission_id } = job;
    // The payload names the model: read the submission and the model together (one round
    // trip); a payload whose model differs from the submission's falls back to a second read.
    const [sub, gotEarly] = await Promise.all([
      deps.submissions.get(workspace, submission_id),
      job.model_id ? deps.registry.get(workspace, job.model_id) : undefined,
    ]);
    if (!sub) return 'already-finished';
    const got = gotEarly && job.model_id === sub.model_id ? gotEarly : await deps.registry.get(workspace, sub.model_id);
    if (!got.ok) {
      await deps.submissions.remove(workspace, submission_id);
      await deps.requests.setStatus(sub.token_hash, { code: 'not_found', message: 'The model was removed before the key was checked.', what_to_do: 'none' });
      throw new UnrecoverableError('model not found');
    }
    const model = got.model;

    const secrets: Secrets = {};
    try {
      for (const [env, box] of Object.entries(sub.sealed)) {
        secrets[env] = await deps.boxKeys.open(sub.key_id, Buffer.from(box, 'base64'));
      }
    } catch (e) {
      wipe(secrets);
      // Only a definite answer about the box itself is final; a store hiccup is retried, so
      // a key is never lost to an infrastructure error.
      if (!isByokError(e) || (e.code !== 'stale_key_id' && e.code !== 'invalid_input')) throw e;
      await finish('rejected', e.code === 'stale_key_id' ? 'The form was out of date; open a new one.' : 'The sealed key could not be opened.');
      throw new UnrecoverableError('sealed box did not open');
    }

    let result: ProbeResult;
    try {
      result = await probe(model, secrets);
      // A newer form submitted meanwhile replaced this submission: its job decides, not this one.
      if (!(await current())) return 'superseded';
      if (result.outcome === 'ok') {
        for (const [env, key] of Object.entries(secrets)) await deps.vault.put(workspace, env, key);
        const masked = maskKey(secrets[model.api_key_env]);
        // The model, and the other models of the same vendor that share this key: one update.
        await deps.registry.set_status_and_key(workspace, model.id, model.api_key_env, 'active');
        await finish('ok', undefined, masked);
        return 'ok';
      }
    } finally {
      wipe(secrets);
    }
    if (DEFINITE.has(result.outcome)) {
      await deps.registry.set_status(workspace, model.id, 'key_error', { code: result.outcome, message: result.message ?? result.outcome });
      await finish(result.outcome, result.message);
      throw new UnrecoverableError(`vendor answered ${result.outcome}`);
    }
    throw new TransientVendorError(result.outcome, result.retryAfterMs);

    async function current(): Promise<boolean> {
      return (await deps.submissions.get(workspace, submission_id)) !== undefined;
    }

    /**
     * Reports, then removes the submission last: a crash before the end leaves it in place,
     * so the job (or the start-up sweep) runs again; the notify job id makes a repeat harmless
     * while the first notification is queued. Validate jobs for one submission share one job
     * id, so two never run at once.
     */
    async function finish(outcome: string, message?: string, masked?: string): Promise<void> {
      if (!(await current())) return;
      await deps.requests.setStatus(
        sub!.token_hash,
        outcome === 'ok' ? { status: 'ok', masked_key: masked } : { code: outcome, message: message ?? outcome, what_to_do: WHAT_TO_DO[outcome as VendorOutcome] ?? 'none' },
      );
      // After the status: whoever is notified can read the result on the page at once.
      const payload: NotifyPayload = { channel: sub!.channel, workspace, model_id: model.id, outcome, masked_key: masked, message };
      await deps.notifyQueue.enqueue(JOB_NOTIFY, payload, { jobId: `notify-${submission_id}` });
      await deps.submissions.remove(workspace, submission_id);
    }
  };
}

/**
 * After the last retry of a transient failure: the submission stays sealed and pending, the
 * model says so, and the user is told to retry with /byok test.
 */
export function validateKeyFinalFailure(deps: ValidateDeps) {
  return async (job: ValidateKeyPayload, err: unknown): Promise<void> => {
    const sub = await deps.submissions.get(job.workspace, job.submission_id);
    if (!sub) return;
    const outcome = err instanceof TransientVendorError ? err.outcome : 'unreachable';
    await deps.registry.set_status(job.workspace, sub.model_id, 'validating', { code: 'pending_retry', message: outcome });
    await deps.requests.setStatus(sub.token_hash, { code: 'pending_retry', message: 'The vendor could not be reached; your key stays sealed. Retry with /byok test from the chat.', what_to_do: 'try_later' });
    await deps.notifyQueue.enqueue(
      JOB_NOTIFY,
      { channel: sub.channel, workspace: job.workspace, model_id: sub.model_id, outcome: 'pending_retry', message: outcome } satisfies NotifyPayload,
      { jobId: `notify-${job.submission_id}-retry${sub.attempts_rounds}` },
    );
  };
}

function wipe(secrets: Secrets): void {
  for (const v of Object.values(secrets)) v.fill(0);
}
