import type { Config } from '../config.ts';
import { ByokError } from '../errors.ts';
import type { KeySource } from '../registry/index.ts';
import { BoxKeys } from '../secrets/box-keys.ts';
import { loadCheckedMasterKeys, recordRotation } from '../secrets/keyring-check.ts';
import type { MasterKeyring } from '../secrets/master-key.ts';
import { Vault } from '../secrets/vault.ts';
import { Submissions } from '../secure-input/submissions.ts';
import { EnvInputRequests } from '../secure-input/tokens.ts';
import type { Store } from '../store/types.ts';
import { configureVendorNet } from '../vendors/net.ts';
import { getWire } from '../vendors/wires/index.ts';
import { validateKeyHandler } from '../jobs/validate-key.ts';
import { createLogger } from '../log.ts';
import { probeWithCredentials } from '../credentials/index.ts';
import type { CommandContext, CommandSpec } from '../cli.ts';
import { channelForWorkspace } from '../jobs/keys.ts';
import { vendorLabel } from '../chat/waiting.ts';

/**
 * CLI commands that touch the sealed side: one-time links, key tests, master-key rotation.
 * The master key ring is loaded lazily, so read-only commands never create master.key, and
 * checked against the store like a starting app (a mismatched key refuses, never seals).
 */
const rings = new WeakMap<Store, Promise<MasterKeyring>>();

/** The checked master key ring of the command's store (loaded once per store). */
export function ring(ctx: CommandContext): Promise<MasterKeyring> {
  const store = ctx.store();
  let r = rings.get(store);
  if (!r) {
    const log = createLogger({ level: 'warn' });
    r = loadCheckedMasterKeys(store, ctx.config(), { info: (m) => log.info(m), warn: (m) => log.warn(m) });
    rings.set(store, r);
  }
  return r;
}

/** A KeySource that opens the vault only when a key is actually looked at. */
export function lazyVaultKeys(getStore: () => Store, getConfig: () => Config): KeySource {
  let vault: Promise<Vault> | undefined;
  const v = () =>
    (vault ??= (async () => {
      const log = createLogger({ level: 'warn' });
      const r = await loadCheckedMasterKeys(getStore(), getConfig(), { info: (m) => log.info(m), warn: (m) => log.warn(m) });
      return new Vault(getStore(), r);
    })());
  return {
    has: async (ws, env) => (await v()).has(ws, env),
    withKey: async (ws, env, fn) => (await v()).withKey(ws, env, fn),
  };
}

/** The chat a workspace's notifications go to when the request starts from the CLI (shared with the key jobs). */
export { channelForWorkspace };

export const secretCommands: Record<string, CommandSpec> = {
  'request-key': {
    summary: 'Issue a fresh one-time secure form link for a model (voids a pending one)',
    usage: 'request-key <model_id> [--lang en|zh]',
    positionals: { min: 1, max: 1 },
    options: { lang: { type: 'string' } },
    run: async (ctx) => {
      if (ctx.workspace.startsWith('tg:group:') || ctx.workspace.startsWith('wx:room-')) {
        return { ok: false, code: 'forbidden', error: 'keys are never collected for a group: request the key in the member\'s own workspace' };
      }
      const got = await ctx.registry().get(ctx.workspace, ctx.args[0]!);
      if (!got.ok) return got;
      const m = got.model;
      if (m.status === 'removed') return { ok: false, code: 'not_found', error: `custom/${m.id} is removed; add it again to reactivate it` };
      const config = ctx.config();
      // A custom endpoint has no key page: named by its host, no link (never "Create a key at custom").
      const page = (await import('../chat/commands/add.ts')).keyPageOf(m);
      const lang = ctx.values.lang === 'zh' ? 'zh' : 'en';
      const requests = new EnvInputRequests(ctx.store(), { ttlMs: config.tokenTtlMs, publicUrl: config.publicUrl });
      const res = await requests.request({
        workspace: ctx.workspace,
        channel: { ...channelForWorkspace(ctx.workspace), lang },
        env_vars: [m.api_key_env, ...m.extra_env_vars],
        reason: `${page.vendor_name} ${m.credential_kind === 'oauth_json' ? 'credentials file' : m.credential_kind === 'aws_keypair' ? 'AWS credentials' : 'API key'} for ${m.name} (custom/${m.id})`,
        model_id: m.id,
        vendor: m.vendor,
        vendor_name: page.vendor_name,
        model_name: `${m.name} (${m.upstream_model})`,
        homepage: page.homepage,
        lang,
        force: true,
      });
      if (res.status !== 'issued') throw new ByokError('internal', 'the link was not issued');
      return { ok: true, url: res.url, expires_at: res.expires_at, model_id: m.id, env_vars: [m.api_key_env, ...m.extra_env_vars] };
    },
  },
  test: {
    summary: 'Check a model against its vendor: finishes a pending sealed submission, else probes with the stored key',
    usage: 'test <model_id>',
    positionals: { min: 1, max: 1 },
    run: async (ctx) => {
      const config = ctx.config();
      configureVendorNet({ allowPrivate: config.allowPrivateBaseUrls, allowlist: config.baseUrlAllowlist });
      const got = await ctx.registry().get(ctx.workspace, ctx.args[0]!);
      if (!got.ok) return got;
      const model = got.model;
      // As the chat names it: the host of the user's own endpoint, never "Any OpenAI-compatible endpoint".
      ctx.progress(`checking ${vendorLabel(model)} (custom/${model.id})`);
      const store = ctx.store();
      const r = await ring(ctx);
      const vault = new Vault(store, r);
      const submissions = new Submissions(store);
      const pending = await submissions.forModel(ctx.workspace, model.id);
      if (pending) {
        // Run the worker's own handler here: same classification, same storing rules.
        const requests = new EnvInputRequests(store, { ttlMs: config.tokenTtlMs, publicUrl: config.publicUrl });
        const handler = validateKeyHandler({
          registry: ctx.registry(),
          vault,
          boxKeys: new BoxKeys(store, r),
          submissions,
          requests,
          notifyQueue: { enqueue: async () => 'cli' },
          logger: createLogger({ level: 'warn' }),
        });
        try {
          await handler({ workspace: ctx.workspace, model_id: model.id, submission_id: pending.id, token_hash: pending.token_hash }, { attempt: 1, maxAttempts: 1, jobId: 'cli' });
          return { ok: true, model_id: model.id, outcome: 'ok', source: 'pending_submission' };
        } catch (e) {
          const outcome = (e as { outcome?: string }).outcome ?? (e as Error).message.replace(/^vendor answered /, '');
          return { ok: false, code: 'rejected', model_id: model.id, outcome, error: `the vendor answered ${outcome}` };
        }
      }
      const probed = await probeWithCredentials({ vault, store: ctx.store() }, ctx.workspace, model, (m, secrets, o) => getWire(m.wire).probe(m, secrets, o));
      const result = probed?.result;
      if (!result) return { ok: false, code: 'need_env_input', error: `no key stored for custom/${model.id}; run byok request-key ${model.id}` };
      if (result.outcome === 'ok') {
        await ctx.registry().set_status(ctx.workspace, model.id, 'active');
        return { ok: true, model_id: model.id, outcome: 'ok', source: 'stored_key' };
      }
      return { ok: false, code: result.outcome, model_id: model.id, outcome: result.outcome, error: result.message ?? result.outcome };
    },
  },
  'rotate-master-key': {
    summary: 'Re-seal every stored key and form key pair under the current master key (BYOK_MASTER_KEY); old keys in BYOK_MASTER_KEY_PREVIOUS',
    usage: 'rotate-master-key',
    run: async (ctx) => {
      const r = await ring(ctx);
      const vault = new Vault(ctx.store(), r);
      const keys = await vault.rotate();
      const box = await new BoxKeys(ctx.store(), r).resealUnderCurrentMasterKey();
      // Only after everything re-sealed (vault.rotate throws at a record it cannot open):
      // from now on a process with only the new key starts, one with only the old refuses.
      const record = await recordRotation(ctx.store(), r);
      return { ok: true, master_key_id: r.current.id, store_master_key: record, vault: keys, box_keys: box };
    },
  },
};
