/** `add_template` (a curated vendor) and `add` (any endpoint, e.g. from parse_example): checks, then register. */
import { ByokError } from '../errors.ts';
import { guarded, type Result } from '../result.ts';
import { WireId } from '../vendors/template-schema.ts';
import { DEFAULT_CAPABILITIES, DEFAULT_MAX_TOKENS, type AddResult, type Registry } from './contract.ts';
import type { RegistryCtx } from './context.ts';
import { bindingsOf, hostOf, keyHostOf } from './key-hosts.ts';
import { teeWarning, type Draft, type RegisterOptions } from './register.ts';
import { argsObject, parseArg } from './shapes.ts';
import { envVarFromHost } from './slug.ts';
import {
  checkBaseUrl,
  checkCapabilities,
  checkEnvVar,
  checkHeaders,
  checkMaxTokens,
  checkModelId,
  checkName,
  checkPricing,
  checkQuery,
  checkRequestFields,
  checkThinking,
  checkUpstreamModel,
  checkWorkspace,
  invalid,
} from './validation.ts';

type Register = (ws: string, input: Draft, opts: RegisterOptions, warnings: string[]) => Promise<Result<AddResult>>;

export function adding(ctx: RegistryCtx, register: Register): Pick<Registry, 'add_template' | 'add'> {
  const { catalog } = ctx;
  const { keyState, readModels } = ctx.doc;
  const templateOrFail = catalog.orFail;
  return {
    add_template(ws, vendor, opts = {}) {
      return guarded(async () => {
        checkWorkspace(ws);
        parseArg(argsObject('options must be an object'), opts);
        const t = templateOrFail(vendor);
        const warnings: string[] = [];
        const placeholder = t.models.find((m) => m.id === t.default_model)?.notes?.some((n) => /placeholder/i.test(n));
        if (opts.upstream_model === undefined && placeholder && t.id === 'openai-compatible') {
          throw invalid(`${t.name} needs upstream_model: the exact model name your server serves (e.g. llama3.1:8b for Ollama)`, {
            field: 'upstream_model',
          });
        }
        const upstream = opts.upstream_model !== undefined ? checkUpstreamModel(opts.upstream_model) : t.default_model;
        let baseUrl: string;
        // Your other models of this vendor all on one other host (the mainland endpoint, an
        // edited base URL): a new one goes there too, with the key you already use there.
        const siblingHosts = new Map((await readModels(ws)).filter((m) => m.status !== 'removed' && m.vendor === t.id).map((m) => [keyHostOf(m.base_url), m.base_url]));
        const sibling = siblingHosts.size === 1 ? [...siblingHosts.values()][0] : undefined;
        if (opts.base_url !== undefined && opts.base_url !== null && opts.base_url !== '') baseUrl = checkBaseUrl(opts.base_url, warnings);
        else if (t.base_url && sibling && keyHostOf(sibling) !== keyHostOf(t.base_url)) {
          baseUrl = sibling;
          warnings.push(`uses ${hostOf(sibling)} like your other ${t.name} models; pass base_url for another endpoint`);
        } else if (t.base_url) baseUrl = t.base_url;
        else if (sibling) baseUrl = sibling;
        else {
          throw invalid(`${t.name} needs a base_url: ${t.base_url_hint ?? 'the endpoint root URL'}`, { field: 'base_url' });
        }
        const curated = t.models.find((m) => m.id === upstream);
        if (!curated) {
          warnings.push(
            `${upstream} is not in ${t.name}'s curated list: capabilities default to json+tools (no vision, no reasoning) and no pricing; adjust them with /byok set <id> <field> <value> in chat or byok update in the CLI`,
          );
        }
        const tee = teeWarning(t, upstream, curated);
        if (tee) warnings.push(tee);
        const settings = { ...t.settings };
        if (opts.settings !== undefined) {
          if (typeof opts.settings !== 'object' || opts.settings === null) throw invalid('settings must be an object', { field: 'settings' });
          for (const [k, v] of Object.entries(opts.settings)) {
            if (!(k in t.settings)) throw invalid(`${t.name} has no setting "${k.slice(0, 40)}" (known: ${Object.keys(t.settings).join(', ') || 'none'})`, { field: 'settings' });
            if (typeof v !== 'string' || !/^[A-Za-z0-9._-]{1,64}$/.test(v)) throw invalid(`settings.${k} must be a short plain value`, { field: 'settings' });
            settings[k] = v;
          }
        }
        if ('region' in settings && opts.settings?.region === undefined) {
          const region = hostOf(baseUrl)?.match(/^bedrock-runtime(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com$/)?.[1];
          if (region) settings.region = region;
        }
        const query = { ...t.default_query };
        if (opts.query !== undefined) {
          if (typeof opts.query !== 'object' || opts.query === null) throw invalid('query must be an object', { field: 'query' });
          for (const [k, v] of Object.entries(checkQuery(opts.query))) {
            if (!(k in t.default_query)) throw invalid(`${t.name} has no query parameter "${k.slice(0, 40)}" (known: ${Object.keys(t.default_query).join(', ') || 'none'})`, { field: 'query' });
            query[k] = v;
          }
        }
        let tokenUrl: string | undefined;
        if (opts.token_url !== undefined && opts.token_url !== '') {
          if (!t.credential.oauth) throw invalid(`${t.name} has no token endpoint (token_url is for OAuth credential files)`, { field: 'token_url' });
          tokenUrl = checkBaseUrl(opts.token_url, warnings);
        }
        const nameGiven = opts.name !== undefined;
        const name = nameGiven ? checkName(opts.name) : checkName(curated?.name ?? upstream);
        const altName = nameGiven ? undefined : checkName(`${name} (${t.id})`.slice(0, 64));
        const maxTokens =
          opts.max_tokens !== undefined
            ? checkMaxTokens(opts.max_tokens)
            : Math.min(t.default_max_tokens ?? DEFAULT_MAX_TOKENS, curated?.max_output_tokens ?? Number.MAX_SAFE_INTEGER);
        const draft: Draft = {
          name,
          vendor: t.id,
          wire: t.wire,
          upstream_model: upstream,
          base_url: baseUrl,
          api_key_env: t.env_var,
          extra_env_vars: [...t.extra_env_vars],
          key_optional: t.auth.optional || t.auth.scheme === 'none',
          credential_kind: t.credential.kind,
          ...(t.credential.oauth && { oauth: { ...t.credential.oauth, ...(tokenUrl && { token_url: tokenUrl }) } }),
          headers: { ...t.default_headers },
          query,
          settings,
          request_fields: {},
          thinking: curated?.thinking ?? t.thinking,
          max_tokens: maxTokens,
          capabilities: curated ? { ...curated.capabilities } : { ...DEFAULT_CAPABILITIES },
          pricing: curated?.pricing,
        };
        return register(
          ws,
          draft,
          { explicitId: opts.id !== undefined ? checkModelId(opts.id) : undefined, nameGiven, altName, vendorLabel: t.name, homepage: t.homepage },
          warnings,
        );
      });
    },

    add(ws, args) {
      return guarded(async () => {
        checkWorkspace(ws);
        parseArg(argsObject('add needs {upstream_model, base_url, ...}'), args);
        const warnings: string[] = [];
        const upstream = checkUpstreamModel(args.upstream_model);
        const baseUrl = checkBaseUrl(args.base_url, warnings);
        const wire = args.wire ?? 'openai';
        if (!WireId.safeParse(wire).success) throw invalid('wire must be openai, anthropic or azure-openai', { field: 'wire' });
        if (wire === 'bedrock') {
          throw invalid('Bedrock needs AWS credentials and a region: use add_template("bedrock", {upstream_model, base_url})', { field: 'wire' });
        }
        if (wire === 'gemini-code-assist') {
          // Code Assist takes only a Gemini CLI login file, never a plain key.
          throw invalid('the Code Assist API needs a Gemini CLI login: use add_template("gemini-cli")', { field: 'wire' });
        }
        const host = hostOf(baseUrl)!;
        const sameHost = catalog.any().find((t) => t.base_url && hostOf(t.base_url) === host);
        const ownerOf = (v: string) => catalog.any().find((t) => t.env_var === v && t.base_url && hostOf(t.base_url) !== host && !(sameHost && sameHost.env_var === v));
        // A stored key is bound to one host: pick a key name no other host uses. An explicit name
        // that belongs to another host (a curated vendor's key, or another endpoint's) is
        // replaced by a host-specific one, with a warning, so a key never leaks to this host.
        const requested = args.api_key_env !== undefined ? checkEnvVar(args.api_key_env) : undefined;
        const ks = await keyState(ws);
        const bound = bindingsOf(ks.models, ks.keyHosts, ks.stored);
        const usedElsewhere = (v: string) => !!ownerOf(v) || bound.some((b) => b.name === v && b.host !== keyHostOf(baseUrl));
        const long = host.replace(/\.[a-z]+(:\d+)?$/, '').toUpperCase().replace(/[^A-Z0-9]+/g, '_').replace(/^_+|_+$/g, '').slice(0, 48);
        const candidates = [requested, sameHost?.env_var, envVarFromHost(host), /^[A-Z]/.test(long) ? `${long}_API_KEY` : undefined].filter(
          (v): v is string => !!v,
        );
        const last = candidates[candidates.length - 1]!;
        for (let i = 2; i < 10; i++) candidates.push(`${last}_${i}`);
        const apiKeyEnv = candidates.find((v) => !usedElsewhere(v));
        if (!apiKeyEnv) throw new ByokError('conflict', `no free key name for ${host}; pass api_key_env with a name of your own`, { field: 'api_key_env', reason: 'no_key_name' });
        if (requested && apiKeyEnv !== requested) {
          const owner = ownerOf(requested);
          warnings.push(
            `${requested} is ${owner ? `the ${owner.name} key` : 'already the key of another endpoint'} and is only sent to its own host; this endpoint's key is stored as ${apiKeyEnv}`,
          );
        }
        if (sameHost) warnings.push(`${host} is the curated vendor ${sameHost.id}: add_template("${sameHost.id}") pre-fills thinking, capabilities and pricing`);
        const nameGiven = args.name !== undefined;
        const name = nameGiven ? checkName(args.name) : checkName(upstream.length <= 64 ? upstream : upstream.split('/').pop()!.slice(0, 64));
        const thinking = args.thinking !== undefined ? checkThinking(args.thinking) : { style: 'none' as const };
        const draft: Draft = {
          name,
          vendor: 'custom',
          wire,
          upstream_model: upstream,
          base_url: baseUrl,
          api_key_env: apiKeyEnv,
          extra_env_vars: [],
          key_optional: args.key_optional === true,
          headers: checkHeaders(args.headers),
          query: checkQuery(args.query),
          settings: {},
          request_fields: checkRequestFields(args.request_fields, warnings),
          thinking,
          max_tokens: args.max_tokens !== undefined ? checkMaxTokens(args.max_tokens) : DEFAULT_MAX_TOKENS,
          capabilities: checkCapabilities(args.capabilities, { ...DEFAULT_CAPABILITIES, reasoning: thinking.style !== 'none' }),
          pricing: args.pricing !== undefined ? checkPricing(args.pricing) : undefined,
        };
        return register(
          ws,
          draft,
          { explicitId: args.id !== undefined ? checkModelId(args.id) : undefined, nameGiven, vendorLabel: host },
          warnings,
        );
      });
    },
  };
}
