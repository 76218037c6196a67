/**
 * The `anthropic` wire: Messages API (`POST <base_url>/v1/messages`, or `<base_url>/messages`
 * when base_url already ends with /v1), `x-api-key` + `anthropic-version: 2023-06-01`,
 * streaming SSE (message_start / content_block_delta text_delta|thinking_delta /
 * message_delta usage / message_stop / error).
 *
 * Client choice: hand-written undici + SSE like the openai wire (see the numbers at the top
 * of openai.ts; @anthropic-ai/sdk sits on the same fetch + stream machinery as the openai
 * SDK and costs the same order of overhead), no retries, AbortSignal honoured.
 *
 * JSON mode: the Messages API has no response_format; when asked and the model's
 * capabilities say json, the system prompt gains a one-line JSON-only instruction.
 *
 * OAuth (credential_kind oauth_json, the Claude Code template): the secret is the access
 * token from Claude Code's credentials file (refreshed by src/credentials). The API takes it
 * as `Authorization: Bearer` with no x-api-key, and only with the `oauth-2025-04-20` beta
 * (without it: 401 "OAuth authentication is currently not supported."); the beta is merged
 * into any anthropic-beta values the model already sends.
 */
import type { CustomModel } from '../../registry/types.ts';
import { classifyError, classifyHttp, toProbeResult, toVendorError, streamFailure } from '../classify.ts';
import { getDefaultNetOptions, joinUrl, USER_AGENT, vendorRequest, type NetOptions } from '../net.ts';
import { parseSse } from '../sse.ts';
import { applyThinking, mergeRequestFields } from '../thinking.ts';
import type { ChatMessage, ProbeResult, Secrets, StreamEvent, StreamOptions, Wire } from '../types.ts';
import { extraHeaders, keyFor, PROBE_HEADERS_TIMEOUT_MS } from './openai.ts';

export const ANTHROPIC_VERSION = '2023-06-01';
export const JSON_INSTRUCTION = 'Answer with a single valid JSON object and nothing else.';

export function anthropicUrl(model: CustomModel): string {
  const path = /\/v1\/?$/.test(new URL(model.base_url).pathname) ? '/messages' : '/v1/messages';
  return joinUrl(model.base_url, path, model.query);
}

export function buildAnthropicBody(
  model: CustomModel,
  messages: ChatMessage[],
  o: { stream: boolean; maxTokens: number; thinking?: boolean; json?: boolean },
): Record<string, unknown> {
  const system: string[] = [];
  const turns: { role: 'user' | 'assistant'; content: string }[] = [];
  for (const m of messages) {
    if (m.role === 'system') system.push(m.content);
    else turns.push({ role: m.role, content: m.content });
  }
  if (o.json && model.capabilities?.json) system.push(JSON_INSTRUCTION);
  const body: Record<string, unknown> = { model: model.upstream_model, max_tokens: o.maxTokens, messages: turns };
  if (system.length) body.system = system.join('\n\n');
  mergeRequestFields(body, model.request_fields, ['model', 'messages', 'stream']);
  applyThinking(model, body, { thinking: o.thinking, maxTokensField: 'max_tokens' });
  if (o.stream) body.stream = true;
  return body;
}

export const OAUTH_BETA = 'oauth-2025-04-20';

/** Bearer mode: the model's credential is an OAuth credentials file (Claude Code). */
export function usesOAuthBearer(model: CustomModel): boolean {
  return model.credential_kind === 'oauth_json';
}

/** `anthropic-beta` values are a comma-separated list; adds `value` once. */
export function mergeBeta(existing: string | undefined, value: string): string {
  const items = (existing ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  if (!items.includes(value)) items.push(value);
  return items.join(',');
}

export function anthropicHeaders(model: CustomModel, key: string, accept: string): Record<string, string> {
  const h: Record<string, string> = {
    ...extraHeaders(model),
    'content-type': 'application/json',
    accept,
    'user-agent': USER_AGENT,
  };
  if (!Object.keys(h).some((k) => k.toLowerCase() === 'anthropic-version')) h['anthropic-version'] = ANTHROPIC_VERSION;
  if (usesOAuthBearer(model)) {
    const betaKey = Object.keys(h).find((k) => k.toLowerCase() === 'anthropic-beta');
    const beta = mergeBeta(betaKey ? h[betaKey] : undefined, OAUTH_BETA);
    if (betaKey) delete h[betaKey];
    h['anthropic-beta'] = beta;
    h.authorization = `Bearer ${key}`;
  } else {
    h['x-api-key'] = key;
  }
  return h;
}

interface AnthropicEvent {
  type?: string;
  message?: { usage?: Usage };
  delta?: { type?: string; text?: string; thinking?: string; stop_reason?: string | null };
  usage?: Usage;
  error?: { type?: string; message?: string };
}
interface Usage {
  input_tokens?: number;
  output_tokens?: number;
  cache_creation_input_tokens?: number | null;
  cache_read_input_tokens?: number | null;
}

function inputTokens(u: Usage): number {
  return (u.input_tokens ?? 0) + (u.cache_creation_input_tokens ?? 0) + (u.cache_read_input_tokens ?? 0);
}

export function createAnthropicWire(netOpts?: NetOptions): Wire {
  const net = () => netOpts ?? getDefaultNetOptions();
  return {
    id: 'anthropic',

    async probe(model, secrets, opts = {}): Promise<ProbeResult> {
      let key: string;
      try {
        key = keyFor(model, secrets);
      } catch (e) {
        return toProbeResult(classifyError(e));
      }
      // A 1-token message proves the key and the model. Thinking stays off (it would need
      // max_tokens > 1024).
      const body = buildAnthropicBody(model, [{ role: 'user', content: 'ping' }], { stream: false, maxTokens: 1, thinking: false });
      try {
        const res = await vendorRequest(
          anthropicUrl(model),
          { method: 'POST', headers: anthropicHeaders(model, key, 'application/json'), body: JSON.stringify(body), signal: opts.signal, headersTimeoutMs: PROBE_HEADERS_TIMEOUT_MS, bodyTimeoutMs: PROBE_HEADERS_TIMEOUT_MS },
          net(),
        );
        const text = await res.body.text().catch(() => '');
        if (res.statusCode >= 300) return toProbeResult(classifyHttp(res.statusCode, res.headers, text, [key]));
        let parsed: { type?: string; content?: unknown } | undefined;
        try {
          parsed = JSON.parse(text);
        } catch {
          parsed = undefined;
        }
        if (parsed?.type === 'error') return toProbeResult(classifyHttp(500, res.headers, parsed, [key]));
        if (!parsed || parsed.type !== 'message') return { outcome: 'rejected', status: res.statusCode, message: 'the answer is not an Anthropic message; check base_url' };
        return { outcome: 'ok', status: res.statusCode };
      } catch (e) {
        return toProbeResult(classifyError(e));
      }
    },

    async *stream(model: CustomModel, secrets: Secrets, messages: ChatMessage[], opts: StreamOptions = {}): AsyncGenerator<StreamEvent> {
      const key = keyFor(model, secrets);
      const body = buildAnthropicBody(model, messages, { stream: true, maxTokens: model.max_tokens, thinking: opts.thinking, json: opts.json });
      let res;
      try {
        res = await vendorRequest(anthropicUrl(model), { method: 'POST', headers: anthropicHeaders(model, key, 'text/event-stream'), body: JSON.stringify(body), signal: opts.signal }, net());
      } catch (e) {
        if (opts.signal?.aborted) throw opts.signal.reason;
        throw toVendorError(classifyError(e));
      }
      if (res.statusCode >= 300) {
        const text = await res.body.text().catch(() => '');
        throw toVendorError(classifyHttp(res.statusCode, res.headers, text, [key]));
      }
      let input = 0;
      let output = 0;
      let sawUsage = false;
      let stop: string | undefined;
      let completed = false;
      try {
        for await (const ev of parseSse(res.body)) {
          if (!ev.data || ev.event === 'ping') continue;
          let obj: AnthropicEvent;
          try {
            obj = JSON.parse(ev.data) as AnthropicEvent;
          } catch {
            continue;
          }
          const type = obj.type ?? ev.event;
          if (type === 'content_block_delta') {
            const d = obj.delta;
            if (d?.type === 'text_delta' && d.text) yield { type: 'text', text: d.text };
            else if (d?.type === 'thinking_delta' && d.thinking) yield { type: 'reasoning', text: d.thinking };
          } else if (type === 'message_start') {
            const u = obj.message?.usage;
            if (u) {
              input = inputTokens(u);
              output = u.output_tokens ?? 0;
              sawUsage = true;
            }
          } else if (type === 'message_delta') {
            if (obj.delta?.stop_reason) stop = obj.delta.stop_reason;
            const u = obj.usage;
            if (u) {
              // message_delta usage is cumulative; input appears there on newer API versions.
              if (u.input_tokens != null) input = inputTokens(u);
              if (u.output_tokens != null) output = u.output_tokens;
              sawUsage = true;
            }
          } else if (type === 'message_stop') {
            break;
          } else if (type === 'error') {
            const status = obj.error?.type === 'overloaded_error' ? 529 : 500;
            throw toVendorError(classifyHttp(status, undefined, obj, [key]));
          }
        }
        completed = true;
      } catch (e) {
        streamFailure(e, opts.signal);
      } finally {
        if (!completed) res.body.destroy();
        else res.body.resume?.();
      }
      if (sawUsage) yield { type: 'usage', input_tokens: input, output_tokens: output };
      yield { type: 'done', ...(stop ? { finish_reason: stop } : {}) };
    },
  };
}

export const anthropicWire: Wire = createAnthropicWire();
