import type { Logger } from '../log.ts';
import { JOB_NOTIFY, UnrecoverableJobError, type JobContext, type JobRunner, type NotifyPayload, type ValidateKeyPayload } from '../queue/types.ts';
import type { Registry } from '../registry/index.ts';
import { maskKey } from '../secrets/mask.ts';
import type { Vault } from '../secrets/vault.ts';
import type { Submissions } from '../secure-input/submissions.ts';
import type { EnvInputRequests } from '../secure-input/tokens.ts';
import { WHAT_TO_DO } from '../vendors/classify.ts';
import type { ProbeResult, Secrets, VendorOutcome } from '../vendors/types.ts';
import { getWire } from '../vendors/wires/index.ts';
import { ByokError, isByokError } from '../errors.ts';
import { isVendorError, VendorError, type FailureOutcome } from '../vendors/errors.ts';
import { t as tr } from '../i18n/index.ts';
import { scrubProbe } from '../secrets/scrub.ts';
import { isCredentialFileError, parseCredentialFile, probeTokenSet, serializeTokenSet, type TokenSet } from '../credentials/index.ts';
import type { KeyMeta } from '../secrets/vault.ts';
import { submittedCredential } from '../secure-input/credential-form.ts';

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
  probe?: (model: Parameters<ReturnType<typeof getWire>['probe']>[0], secrets: Secrets, opts?: { signal?: AbortSignal }) => Promise<ProbeResult>;
  /** Time limits (defaults: DEFAULT_VALIDATE_BUDGET). */
  budget?: Partial<ValidateBudget>;
}

/**
 * A hanging vendor must not hold a user and a worker slot for attempts × timeout: each try
 * is cut at `probeTimeoutMs`, and once `totalMs` have passed since the job was enqueued the
 * job stops retrying and reports pending_retry (the sealed key stays for /byok test).
 */
export interface ValidateBudget {
  probeTimeoutMs: number;
  totalMs: number;
}

export const DEFAULT_VALIDATE_BUDGET: ValidateBudget = { probeTimeoutMs: 10_000, totalMs: 45_000 };
/** A try started after the budget ran out (a late retry) still gets this long. */
const MIN_TRY_MS = 2_000;
/** No retry when less than this is left: the next try could not finish in time. */
const MIN_RETRY_LEFT_MS = 1_000;

const DEFINITE: ReadonlySet<VendorOutcome> = new Set(['invalid_key', 'invalid_model', 'quota_exceeded', 'rejected']);

/**
 * A model that is active on a stored key keeps working while a replacement key is checked:
 * a submission does not set it 'validating' and a refused replacement does not set
 * 'key_error' (the attempt is recorded apart, in `last_key_attempt`).
 */
export async function keepsPreviousKey(
  deps: { registry: Pick<Registry, 'get'>; vault: Pick<Vault, 'has'> },
  workspace: string,
  modelId: string,
): Promise<boolean> {
  const got = await deps.registry.get(workspace, modelId);
  return got.ok && got.model.status === 'active' && (await deps.vault.has(workspace, got.model.api_key_env));
}

/**
 * A transient vendor answer as the VendorError the runner retries with backoff (after its
 * `retryAfterMs` when the vendor gave one). The message is the classified, key-free one.
 */
function transientError(result: ProbeResult & { outcome: FailureOutcome }): VendorError {
  return new VendorError(result.outcome, result.message ?? `vendor answered ${result.outcome}`, {
    status: result.status,
    retryAfterMs: result.retryAfterMs,
    whatToDo: WHAT_TO_DO[result.outcome],
  });
}

/**
 * validate-key: open the sealed submission, probe the vendor, and store the key sealed only
 * when the vendor accepts it. Idempotent per submission: a job that runs again after a
 * crash finds the submission gone (already finished) or finishes it once.
 */
export function validateKeyHandler(deps: ValidateDeps) {
  const probe = deps.probe ?? ((model, secrets, opts) => getWire(model.wire).probe(model, secrets, opts));
  const budget: ValidateBudget = { ...DEFAULT_VALIDATE_BUDGET, ...deps.budget };
  const giveUp = validateKeyFinalFailure(deps);
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
    // A removed model is gone for the user too ("/byok test <id>" would answer "unknown model").
    if (!got.ok || got.model.status === 'removed') {
      await deps.submissions.remove(workspace, submission_id);
      await deps.requests.setStatus(sub.token_hash, { code: 'not_found', message: 'The model was removed before the key was checked.', what_to_do: 'none' });
      throw new UnrecoverableJobError('model not found', 'not_found');
    }
    // Credential choice: a Bedrock API key sent for a key-pair model (or a pair for
    // a bearer model) is probed as that credential; the model switches to it once accepted.
    const model = submittedCredential(got.model, Object.keys(sub.sealed));
    const switchedCredential = model !== got.model;
    const kind = model.credential_kind ?? 'api_key';

    const secrets: Secrets = {};
    try {
      for (const [env, box] of Object.entries(sub.sealed)) {
        secrets[env] = await deps.boxKeys.open(sub.key_id, Buffer.from(box, 'base64'));
      }
    } catch (e) {
      wipe(secrets);
      // The form key pair exists but is sealed under a master key this process lacks (a
      // misconfigured or not yet rotated process): never final. The submission stays for a
      // process that has the key; the runner retries.
      if (isByokError(e) && e.code === 'master_key_unavailable') {
        deps.logger.warn({ workspace, submission_id, key_id: sub.key_id, kid: e.details?.kid }, 'validate-key: this process lacks the master key of the form key pair; the submission stays pending for a process that has it (set the same BYOK_MASTER_KEY on every process)');
        throw new ByokError('master_key_unavailable', `master key ${String(e.details?.kid)} unavailable in this process; submission left pending`, { kid: e.details?.kid });
      }
      // Only a definite answer about the box itself is final; a store hiccup is retried, so
      // a key is never lost to an infrastructure error.
      if (!isByokError(e) || (e.code !== 'stale_key_id' && e.code !== 'invalid_input')) throw e;
      // A form problem, not a vendor answer: the vendor was never contacted.
      const kept = await keepsPreviousKey(deps, workspace, model.id);
      if (kept) await deps.registry.record_key_attempt(workspace, model.id, { outcome: 'form_error' });
      else if (model.status === 'validating') await deps.registry.set_status(workspace, model.id, 'pending_key');
      await finish('form_error', e.code === 'stale_key_id' ? 'the form was out of date' : 'the sealed key could not be opened', undefined, {
        kept,
        detail: { key: e.code === 'stale_key_id' ? 'err.form_error.stale' : 'err.form_error.unreadable' },
      });
      throw new UnrecoverableJobError('sealed box did not open', e.code);
    }

    // An OAuth credentials file is checked before the vendor is asked: a file of the wrong
    // CLI, cut short or missing a field is a definite answer in the user's language, never retried.
    let tokenSet: TokenSet | undefined;
    if (kind === 'oauth_json') {
      try {
        if (!model.oauth) throw new UnrecoverableJobError(`model ${model.id} takes an OAuth file but has no oauth settings`, 'config');
        const text = new TextDecoder().decode(secrets[model.api_key_env] ?? new Uint8Array());
        tokenSet = parseCredentialFile(model.oauth.provider, text, { projectId: sub.project_id });
      } catch (e) {
        wipe(secrets);
        if (!isCredentialFileError(e)) throw e;
        const kept = await keepsPreviousKey(deps, workspace, model.id);
        if (kept) await deps.registry.record_key_attempt(workspace, model.id, { outcome: 'form_error' });
        else if (model.status === 'validating') await deps.registry.set_status(workspace, model.id, 'pending_key');
        await finish('form_error', tr(sub.lang ?? 'en', e.key, e.params), undefined, { kept, detail: { key: e.key, params: e.params } });
        throw new UnrecoverableJobError(`credential file refused: ${e.message}`, 'invalid_input');
      }
    }

    const startedAt = job.queued_at ?? Date.parse(sub.created_at);
    const deadline = (Number.isFinite(startedAt) ? startedAt : Date.now()) + budget.totalMs;
    let result: ProbeResult;
    try {
      const tryMs = Math.min(budget.probeTimeoutMs, Math.max(MIN_TRY_MS, deadline - Date.now()));
      let masked: string | undefined;
      let maskFrom: Uint8Array | undefined;
      if (tokenSet) {
        // Refreshed first when expired (and once more on a 401); the set stored is the newest.
        const r = await probeOAuthWithin(probe, model, tokenSet, tryMs);
        result = scrubProbe(r.result, secrets);
        if (result.outcome === 'ok') {
          secrets[model.api_key_env]?.fill(0);
          secrets[model.api_key_env] = serializeTokenSet(r.ts);
          // The file is never shown, masked or not: the refresh token's last 4 stand for it.
          masked = maskKey(r.ts.refresh_token);
          maskFrom = new TextEncoder().encode(r.ts.refresh_token);
        }
      } else {
        // Vendors echo keys (whole, cut short, URL-encoded): scrub before anything is kept or shown.
        result = scrubProbe(await probeWithin(probe, model, secrets, tryMs), secrets);
      }
      // A newer form submitted meanwhile replaced this submission: its job decides, not this one.
      if (!(await current())) return 'superseded';
      if (result.outcome === 'ok') {
        const at = Date.now();
        const meta: KeyMeta = {
          kind,
          validated_at: new Date(at).toISOString(),
          expires_at: sub.expires_in_days ? new Date(at + sub.expires_in_days * 86_400_000).toISOString() : null,
          channel: sub.channel,
        };
        try {
          for (const [env, key] of Object.entries(secrets)) await deps.vault.put(workspace, env, key, meta, env === model.api_key_env && maskFrom ? { maskFrom } : undefined);
        } finally {
          maskFrom?.fill(0);
        }
        masked ??= maskKey(secrets[model.api_key_env]);
        // The accepted credential becomes the model's (and its vendor siblings') before the status update.
        if (switchedCredential) {
          const used = await deps.registry.use_credential(workspace, model.id, { kind: model.credential_kind ?? 'api_key', api_key_env: model.api_key_env, extra_env_vars: model.extra_env_vars });
          if (!used.ok) deps.logger.warn({ workspace, model_id: model.id, code: used.code }, 'validate-key: the model could not switch to the accepted credential');
        }
        // The model, and the other models of the same vendor that share this key: one update.
        await deps.registry.set_status_and_key(workspace, model.id, model.api_key_env, 'active');
        if (model.last_key_attempt) await deps.registry.record_key_attempt(workspace, model.id, { outcome: 'ok' });
        await finish('ok', undefined, masked);
        return 'ok';
      }
    } finally {
      wipe(secrets);
    }
    if (DEFINITE.has(result.outcome)) {
      const kept = await keepsPreviousKey(deps, workspace, model.id);
      if (kept) await deps.registry.record_key_attempt(workspace, model.id, { outcome: result.outcome });
      // A model the vendor does not serve is the model's problem, not the key's (fix the name, then send the key again).
      else await deps.registry.set_status(workspace, model.id, result.outcome === 'invalid_model' ? 'model_problem' : 'key_error', { code: result.outcome, message: result.message ?? result.outcome });
      // A mistyped key: the page may offer the form again (a fresh link, see EnvInputRequests.retryFor).
      await finish(result.outcome, result.message, undefined, { kept, retry: result.outcome === 'invalid_key' });
      throw new UnrecoverableJobError(`vendor answered ${result.outcome}`, result.outcome);
    }
    const transient = transientError({ ...result, outcome: result.outcome as FailureOutcome });
    // Out of time (or the vendor asks us to wait past it): stop retrying and say so now.
    const left = deadline - Date.now();
    if (left < MIN_RETRY_LEFT_MS || (result.retryAfterMs ?? 0) >= left) {
      await giveUp(job, transient);
      throw new UnrecoverableJobError(`validation budget spent: vendor answered ${result.outcome}${result.status ? ` (HTTP ${result.status})` : ''}`, transient.outcome);
    }
    throw transient;

    async function current(): Promise<boolean> {
      return (await deps.submissions.get(workspace, submission_id)) !== undefined;
    }

    /**
     * Reports, then removes the submission last: a crash before the end leaves it in place,
     * so the job (or the start-up sweep) runs again; the notify job id makes a repeat harmless
     * while the first notification is queued. Validate jobs for one submission share one job
     * id, so two never run at once.
     */
    async function finish(outcome: string, message?: string, masked?: string, opts: { kept?: boolean; retry?: boolean; detail?: { key: string; params?: Record<string, string> } } = {}): Promise<void> {
      if (!(await current())) return;
      const lang = sub!.lang ?? 'en';
      const said = message ?? outcome;
      const pageMessage =
        outcome === 'form_error'
          ? tr(lang, opts.kept ? 'form.form_error_kept' : 'form.form_error', { message: said })
          : opts.kept
            ? tr(lang, 'form.kept_previous', { message: said })
            : said;
      await deps.requests.setStatus(
        sub!.token_hash,
        outcome === 'ok'
          ? { status: 'ok', masked_key: masked }
          : {
              code: outcome,
              message: pageMessage,
              what_to_do: outcome === 'form_error' ? 'open_new_form' : (WHAT_TO_DO[outcome as VendorOutcome] ?? 'none'),
              ...(opts.kept ? { kept_previous: true } : {}),
              ...(opts.retry ? { retry: true } : {}),
              ...(opts.detail ? { detail: opts.detail } : {}),
              model_id: model.id,
            },
      );
      // After the status: whoever is notified can read the result on the page at once.
      const payload: NotifyPayload = {
        channel: sub!.channel,
        workspace,
        model_id: model.id,
        outcome,
        masked_key: masked,
        message,
        notice_id: submission_id,
        ...(opts.kept ? { reason: 'kept_previous' } : {}),
      };
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
    const t = isVendorError(err) ? err : undefined;
    // What the vendor said last: a 429 or a 5xx is an answer, not "could not be reached".
    const reason = t?.outcome === 'rate_limited' || t?.outcome === 'vendor_unavailable' ? t.outcome : 'unreachable';
    const said = pendingMessage(reason, t);
    const kept = await keepsPreviousKey(deps, job.workspace, sub.model_id);
    if (kept) await deps.registry.record_key_attempt(job.workspace, sub.model_id, { outcome: 'pending_retry' });
    else await deps.registry.set_status(job.workspace, sub.model_id, 'validating', { code: 'pending_retry', message: said });
    await deps.requests.setStatus(sub.token_hash, {
      code: 'pending_retry',
      message: `${said[0]!.toUpperCase()}${said.slice(1)}; your key stays sealed. Retry with /byok test from the chat.${kept ? ' Your previous key is still in use.' : ''}`,
      what_to_do: reason === 'rate_limited' ? 'wait' : 'try_later',
    });
    const payload: NotifyPayload = {
      channel: sub.channel,
      workspace: job.workspace,
      model_id: sub.model_id,
      outcome: 'pending_retry',
      message: said,
      reason,
      notice_id: `${job.submission_id}-retry${sub.attempts_rounds}`,
      ...(t?.status !== undefined && { status: t.status }),
      ...(t?.retryAfterMs !== undefined && { retry_after_ms: t.retryAfterMs }),
    };
    await deps.notifyQueue.enqueue(
      JOB_NOTIFY,
      payload,
      { jobId: `notify-${job.submission_id}-retry${sub.attempts_rounds}` },
    );
  };
}

/** A short, key-free account of the vendor's last answer, for the form and the registry. */
function pendingMessage(reason: 'rate_limited' | 'vendor_unavailable' | 'unreachable', t?: VendorError): string {
  if (reason === 'rate_limited') {
    const after = t?.retryAfterMs ? `; it asks to retry after ${Math.max(1, Math.ceil(t.retryAfterMs / 1000))} s` : '';
    return `the vendor answered HTTP ${t?.status ?? 429} (rate limited)${after}`;
  }
  if (reason === 'vendor_unavailable') return `the vendor answered${t?.status ? ` HTTP ${t.status}` : ''} (unavailable or overloaded)`;
  return `the vendor could not be reached (${t?.message ?? 'no answer'})`;
}

/** An OAuth file's try (refresh when needed + probe), cut after `ms` like probeWithin. */
async function probeOAuthWithin(probe: NonNullable<ValidateDeps['probe']>, model: Parameters<NonNullable<ValidateDeps['probe']>>[0], ts: TokenSet, ms: number): Promise<{ result: ProbeResult; ts: TokenSet }> {
  const signal = AbortSignal.timeout(ms);
  const r = await probeTokenSet(model, ts, probe, { signal });
  if (signal.aborted && r.result.outcome !== 'ok') return { result: { outcome: 'unreachable', message: `the vendor did not answer within ${Math.round(ms / 1000)} s` }, ts: r.ts };
  return r;
}

/** One try, cut after `ms`: a vendor that does not answer is reported as such. */
async function probeWithin(probe: NonNullable<ValidateDeps['probe']>, model: Parameters<NonNullable<ValidateDeps['probe']>>[0], secrets: Secrets, ms: number): Promise<ProbeResult> {
  const signal = AbortSignal.timeout(ms);
  const r = await probe(model, secrets, { signal });
  if (signal.aborted && r.outcome !== 'ok') return { outcome: 'unreachable', message: `the vendor did not answer within ${Math.round(ms / 1000)} s` };
  return r;
}

function wipe(secrets: Secrets): void {
  for (const v of Object.values(secrets)) v.fill(0);
}
