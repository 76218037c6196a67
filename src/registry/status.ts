/**
 * Status changes: after a probe (set_status, set_key_status, set_status_and_key), a replacement
 * key that was not stored (record_key_attempt), and a switch of credential shape (use_credential).
 */
import { fail, guarded, ok, type Fail, type Result } from '../result.ts';
import { selectorOf, type Registry } from './contract.ts';
import type { RegistryCtx } from './context.ts';
import { checkKeyHost } from './key-hosts.ts';
import type { CustomModel, ModelStatus } from './types.ts';
import { attemptSchema, credentialKindSchema, extraEnvVarsSchema, keyStatusSchema, parseArg, statusSchema } from './shapes.ts';
import { checkEnvVar, checkLastError, checkWorkspace, stripSelector } from './validation.ts';

/** A good key does not make a model the vendor does not serve ready: only a probe of that model does. */
export function keepsModelProblem(m: CustomModel, status: ModelStatus): boolean {
  return m.status === 'model_problem' && status === 'active';
}

export function applyStatus(m: CustomModel, status: ModelStatus, err: { code: string; message: string } | undefined, at: string): void {
  m.status = status;
  if (err) m.last_error = { ...err, at };
  else if (status === 'active') delete m.last_error;
  m.updated_at = at;
}

type StatusChanges = Pick<Registry, 'set_status' | 'set_key_status' | 'set_status_and_key' | 'record_key_attempt' | 'use_credential'>;

export function statusChanges(ctx: RegistryCtx): StatusChanges {
  const { now } = ctx;
  const { keyState, mutateModels, notFound } = ctx.doc;
  return {
    set_status(ws, modelId, status, lastError) {
      return guarded(async () => {
        checkWorkspace(ws);
        const id = stripSelector(modelId);
        parseArg(statusSchema, status, 'status');
        const err = lastError !== undefined ? checkLastError(lastError) : undefined;
        const at = now().toISOString();
        return mutateModels(ws, (models): Result<{ model: CustomModel }> => {
          const m = models.find((x) => x.id === id);
          if (!m) return notFound(ws, id, models);
          if (m.status === 'removed' && status !== 'removed') {
            return fail('conflict', `${selectorOf(m)} was removed meanwhile; its status is left as is`, { reason: 'removed_meanwhile' });
          }
          applyStatus(m, status, err, at);
          return ok({ model: m });
        });
      });
    },

    set_key_status(ws, envVar, status, lastError) {
      return guarded(async () => {
        checkWorkspace(ws);
        const v = checkEnvVar(envVar);
        parseArg(keyStatusSchema, status, 'status');
        const err = lastError !== undefined ? checkLastError(lastError) : undefined;
        const at = now().toISOString();
        return mutateModels(ws, (models) => {
          const hit = models.filter((m) => m.status !== 'removed' && (m.api_key_env === v || m.extra_env_vars.includes(v)) && !keepsModelProblem(m, status));
          for (const m of hit) applyStatus(m, status, err, at);
          return ok({ models: hit });
        });
      });
    },

    set_status_and_key(ws, modelId, envVar, status, lastError) {
      return guarded(async () => {
        checkWorkspace(ws);
        const id = stripSelector(modelId);
        const v = checkEnvVar(envVar);
        parseArg(keyStatusSchema, status, 'status');
        const err = lastError !== undefined ? checkLastError(lastError) : undefined;
        const at = now().toISOString();
        return mutateModels(ws, (models): Result<{ model: CustomModel; models: CustomModel[] }> => {
          const m = models.find((x) => x.id === id);
          let modelPart: Fail | undefined;
          if (!m) modelPart = notFound(ws, id, models);
          else if (m.status === 'removed') modelPart = fail('conflict', `${selectorOf(m)} was removed meanwhile; its status is left as is`, { reason: 'removed_meanwhile' });
          else applyStatus(m, status, err, at);
          const hit = models.filter((x) => x.status !== 'removed' && (x.api_key_env === v || x.extra_env_vars.includes(v)) && (x === m || !keepsModelProblem(x, status)));
          for (const x of hit) applyStatus(x, status, err, at);
          return modelPart ?? ok({ model: m!, models: hit });
        });
      });
    },

    record_key_attempt(ws, modelId, attempt) {
      return guarded(async () => {
        checkWorkspace(ws);
        const id = stripSelector(modelId);
        parseArg(attemptSchema, attempt, 'last_key_attempt');
        const at = now().toISOString();
        return mutateModels(ws, (models): Result<{ model: CustomModel }> => {
          const m = models.find((x) => x.id === id);
          if (!m) return notFound(ws, id, models);
          m.last_key_attempt = { outcome: attempt.outcome, at };
          return ok({ model: m });
        });
      });
    },

    use_credential(ws, modelId, credential) {
      return guarded(async () => {
        checkWorkspace(ws);
        const id = stripSelector(modelId);
        const kind = parseArg(credentialKindSchema, credential?.kind, 'credential_kind');
        const env = checkEnvVar(credential.api_key_env);
        const extra = parseArg(extraEnvVarsSchema, credential.extra_env_vars, 'extra_env_vars').map(checkEnvVar);
        const at = now().toISOString();
        const ks = await keyState(ws);
        return mutateModels(ws, (models): Result<{ model: CustomModel; models: CustomModel[] }> => {
          const m = models.find((x) => x.id === id);
          if (!m) return notFound(ws, id, models);
          if (m.status === 'removed') return fail('conflict', `${selectorOf(m)} was removed meanwhile; its credential is left as is`, { reason: 'removed_meanwhile' });
          // The models that shared the old key follow it: one key per vendor in a workspace.
          const hit = models.filter((x) => x.id === m.id || (x.status !== 'removed' && x.vendor === m.vendor && x.api_key_env === m.api_key_env));
          for (const x of hit) checkKeyHost(models.filter((y) => !hit.includes(y)), {}, ks.stored, env, x.base_url);
          for (const x of hit) {
            x.credential_kind = kind;
            x.api_key_env = env;
            x.extra_env_vars = [...extra];
            x.updated_at = at;
          }
          return ok({ model: m, models: hit });
        });
      });
    },
  };
}
