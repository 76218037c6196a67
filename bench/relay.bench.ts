/**
 * Relay overhead: time to first token (TTFT) and total stream time through the wires vs
 * the same fake vendor called directly with a bare undici request, measured in the same
 * process, 100 concurrent streams per round, modes interleaved round by round.
 * Also measures the official `openai` SDK (custom fetch through the same SSRF-safe
 * dispatcher, maxRetries 0) to decide the client choice documented in wires/openai.ts.
 *
 *   npx tsx bench/relay.bench.ts [rounds=10] [concurrency=100] [chunkDelayMs=1]
 *
 * The fake vendors run in a child process so that their CPU does not queue behind the
 * relay's in one event loop. Two loads: 1 stream at a time (the per-stream overhead the
 * target is about) and CONC concurrent streams (overhead under load, where any extra CPU
 * per chunk shows up as queueing).
 *
 * Target (issue 4): added p50 <= 0.5 ms, p99 <= 2 ms.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';
import { Agent, request } from 'undici';
import type { CustomModel } from '../src/registry/types.ts';
import { vendorFetch, type NetOptions } from '../src/vendors/net.ts';
import type { Wire } from '../src/vendors/types.ts';
import { createWire } from '../src/vendors/wires/index.ts';
import { startFakeAnthropic, startFakeBedrock, startFakeOpenAI, type FakeVendor } from '../test/support/fake-vendors.ts';

const ROUNDS = Number(process.argv[2] ?? 10);
const CONC = Number(process.argv[3] ?? 100);
const DELAY = Number(process.argv[4] ?? 1);
const NET: NetOptions = { allowPrivate: true, allowlist: [] };
const REPLY = Array.from({ length: 20 }, (_, i) => `tok${i}`).join(' ');
const enc = new TextEncoder();

type Sample = { ttft: number; total: number };
const now = () => performance.now();

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

function model(p: Partial<CustomModel>): CustomModel {
  return {
    id: 'b', name: 'b', vendor: 'custom', wire: 'openai', upstream_model: 'gpt-4o-mini', base_url: '', api_key_env: 'K', extra_env_vars: [], key_optional: false,
    headers: {}, query: {}, settings: {}, request_fields: {}, thinking: { style: 'none' }, max_tokens: 256,
    capabilities: { json: false, vision: false, tools: false, reasoning: false }, status: 'active', created_at: '', updated_at: '', ...p,
  };
}

const bare = new Agent({ keepAliveTimeout: 30_000 });

/** Baseline: a bare undici request, first byte of a content delta = first token. */
async function direct(url: string, headers: Record<string, string>, body: string, marker: string): Promise<Sample> {
  const t0 = now();
  const res = await request(url, { method: 'POST', headers, body, dispatcher: bare });
  let ttft = 0;
  for await (const chunk of res.body) {
    if (!ttft && (chunk as Buffer).includes(marker)) ttft = now() - t0;
  }
  return { ttft, total: now() - t0 };
}

async function viaWire(w: Wire, m: CustomModel, secrets: Record<string, Uint8Array>): Promise<Sample> {
  const t0 = now();
  let ttft = 0;
  for await (const e of w.stream(m, secrets, [{ role: 'user', content: 'hi' }])) {
    if (!ttft && e.type === 'text') ttft = now() - t0;
  }
  return { ttft, total: now() - t0 };
}

async function viaSdk(client: OpenAI): Promise<Sample> {
  const t0 = now();
  let ttft = 0;
  const s = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], stream: true, stream_options: { include_usage: true }, max_tokens: 256 });
  for await (const c of s) {
    if (!ttft && c.choices[0]?.delta?.content) ttft = now() - t0;
  }
  return { ttft, total: now() - t0 };
}

let conc = CONC;
async function round(fn: () => Promise<Sample>): Promise<Sample[]> {
  if (conc === 1) {
    const out: Sample[] = [];
    for (let i = 0; i < 100; i++) out.push(await fn());
    return out;
  }
  return Promise.all(Array.from({ length: conc }, fn));
}

function report(name: string, base: Sample[], mode: Record<string, Sample[]>): void {
  const b50t = pct(base.map((s) => s.ttft), 50), b99t = pct(base.map((s) => s.ttft), 99);
  const b50 = pct(base.map((s) => s.total), 50), b99 = pct(base.map((s) => s.total), 99);
  console.log(`\n== ${name}: ${base.length} streams per mode (${ROUNDS} rounds, ${conc === 1 ? 'one stream at a time' : `${conc} concurrent`}), ${DELAY} ms between chunks`);
  console.log(`  baseline (bare undici)  TTFT p50 ${b50t.toFixed(3)} ms  p99 ${b99t.toFixed(3)} ms | total p50 ${b50.toFixed(3)} ms  p99 ${b99.toFixed(3)} ms`);
  for (const [k, xs] of Object.entries(mode)) {
    const t50 = pct(xs.map((s) => s.ttft), 50), t99 = pct(xs.map((s) => s.ttft), 99);
    const a50 = pct(xs.map((s) => s.total), 50), a99 = pct(xs.map((s) => s.total), 99);
    console.log(
      `  ${k.padEnd(22)} TTFT p50 ${t50.toFixed(3)} ms  p99 ${t99.toFixed(3)} ms | total p50 ${a50.toFixed(3)} ms  p99 ${a99.toFixed(3)} ms\n` +
        `  ${''.padEnd(22)} added: TTFT p50 ${(t50 - b50t).toFixed(3)} ms  p99 ${(t99 - b99t).toFixed(3)} ms | total p50 ${(a50 - b50).toFixed(3)} ms  p99 ${(a99 - b99).toFixed(3)} ms` +
        `  ratio total p50 x${(a50 / b50).toFixed(3)}  p99 x${(a99 / b99).toFixed(3)}`,
    );
  }
}

async function benchOpenAI(fake: FakeVendor): Promise<void> {
  const w = createWire('openai', NET);
  const m = model({ base_url: fake.baseUrl });
  const secrets = { K: enc.encode('sk-bench') };
  const body = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], stream: true, stream_options: { include_usage: true }, max_tokens: 256 });
  const headers = { 'content-type': 'application/json', authorization: 'Bearer sk-bench', accept: 'text/event-stream' };
  const url = `${fake.baseUrl}/chat/completions`;
  const client = new OpenAI({ apiKey: 'sk-bench', baseURL: fake.baseUrl, maxRetries: 0, fetch: ((u: string, i: RequestInit) => vendorFetch(u, i, NET)) as never });
  const base: Sample[] = [], relay: Sample[] = [], sdk: Sample[] = [];
  // warm-up
  await round(() => direct(url, headers, body, '"content":"tok'));
  await round(() => viaWire(w, m, secrets));
  await round(() => viaSdk(client));
  for (let r = 0; r < ROUNDS; r++) {
    base.push(...(await round(() => direct(url, headers, body, '"content":"tok'))));
    relay.push(...(await round(() => viaWire(w, m, secrets))));
    sdk.push(...(await round(() => viaSdk(client))));
  }
  report('openai wire', base, { 'relay (hand-written)': relay, 'openai SDK 6': sdk });
}

async function benchAnthropic(fake: FakeVendor): Promise<void> {
  const w = createWire('anthropic', NET);
  const m = model({ wire: 'anthropic', base_url: fake.baseUrl, upstream_model: 'claude-x' });
  const secrets = { K: enc.encode('sk-ant-bench') };
  const body = JSON.stringify({ model: 'claude-x', max_tokens: 256, messages: [{ role: 'user', content: 'hi' }], stream: true });
  const headers = { 'content-type': 'application/json', 'x-api-key': 'sk-ant-bench', 'anthropic-version': '2023-06-01' };
  const url = `${fake.baseUrl}/v1/messages`;
  const base: Sample[] = [], relay: Sample[] = [];
  await round(() => direct(url, headers, body, '"text_delta","text":"tok'));
  await round(() => viaWire(w, m, secrets));
  for (let r = 0; r < ROUNDS; r++) {
    base.push(...(await round(() => direct(url, headers, body, '"text_delta","text":"tok'))));
    relay.push(...(await round(() => viaWire(w, m, secrets))));
  }
  report('anthropic wire', base, { 'relay (hand-written)': relay });
}

async function benchBedrock(fake: FakeVendor): Promise<void> {
  const w = createWire('bedrock', NET);
  const m = model({ wire: 'bedrock', base_url: fake.baseUrl, upstream_model: 'amazon.nova-micro-v1:0', api_key_env: 'AWS_BEARER_TOKEN_BEDROCK', settings: { region: 'us-east-1' } });
  const secrets = { AWS_BEARER_TOKEN_BEDROCK: enc.encode('ABSKbenchbenchbenchbench') };
  const body = JSON.stringify({ messages: [{ role: 'user', content: [{ text: 'hi' }] }], inferenceConfig: { maxTokens: 256 } });
  const headers = { 'content-type': 'application/json', authorization: 'Bearer ABSKbenchbenchbenchbench' };
  const url = `${fake.baseUrl}/model/amazon.nova-micro-v1%3A0/converse-stream`;
  const base: Sample[] = [], relay: Sample[] = [];
  await round(() => direct(url, headers, body, '"text":"tok'));
  await round(() => viaWire(w, m, secrets));
  for (let r = 0; r < ROUNDS; r++) {
    base.push(...(await round(() => direct(url, headers, body, '"text":"tok'))));
    relay.push(...(await round(() => viaWire(w, m, secrets))));
  }
  report('bedrock wire (bearer)', base, { 'relay (hand-written)': relay });
}

if (process.argv.includes('--serve')) {
  const oa = await startFakeOpenAI({ reply: REPLY, chunkDelayMs: DELAY });
  const an = await startFakeAnthropic({ reply: REPLY, chunkDelayMs: DELAY });
  const br = await startFakeBedrock({ reply: REPLY, chunkDelayMs: DELAY });
  console.log(JSON.stringify({ oa: oa.baseUrl, an: an.baseUrl, br: br.baseUrl }));
  process.stdin.resume();
  process.stdin.on('end', () => process.exit(0));
} else {
  const child = spawn(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), String(ROUNDS), String(CONC), String(DELAY), '--serve'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const line: string = await new Promise((r) => createInterface({ input: child.stdout! }).once('line', r));
  const urls = JSON.parse(line) as { oa: string; an: string; br: string };
  const fake = (baseUrl: string) => ({ baseUrl }) as FakeVendor;
  try {
    for (const c of [1, CONC]) {
      conc = c;
      await benchOpenAI(fake(urls.oa));
      await benchAnthropic(fake(urls.an));
      await benchBedrock(fake(urls.br));
    }
  } finally {
    child.stdin!.end();
    child.kill();
    await bare.close();
  }
  process.exit(0);
}
