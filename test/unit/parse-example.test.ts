import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { KEY_DROPPED_WARNING, parseExample, type ExampleDraft } from '../../src/registry/parse-example/index.ts';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'examples');
const fixture = (name: string) => readFileSync(join(FIXTURES, name), 'utf8');

/** Random, fake keys planted in some fixtures; none may ever appear in a result. */
const FAKE_KEYS = [
  'sk-ant-api03-hJZ3PhPeLwlq5xbTjNP4o5zPQqKxhMTtnRjrzE8RF-2WSBoN2_czrsatMX66f8iNOqjA1UcUxAZ2RxQIJxQYp3AA',
  'fw_jIJuLcjMsGAiLBsvkzSylEcC',
  'aa61cde4d420bf61fcaedd02afb4426f',
  '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',
  'sk-proj-ywk__4AWKUCrUwP0FFEaPF-3T2JdgwCiSeCOJTKjOX0h9TLS',
  '1b1b6b7fd0f1fd18bb7801c433c7472a2418daa4098154074d6f5735dae99a0a',
];

type Case = { file: string; draft: ExampleDraft; keyWarning: boolean; warnings?: RegExp[] };

const CASES: Case[] = [
  {
    file: 'openai-curl.txt',
    keyWarning: false,
    draft: {
      upstream_model: 'gpt-5-mini',
      base_url: 'https://api.openai.com/v1',
      wire: 'openai',
      api_key_env: 'OPENAI_API_KEY',
      headers: {},
      request_fields: {},
      thinking: { style: 'reasoning_effort', default_effort: 'low' },
      source: 'curl',
    },
  },
  {
    file: 'openai-python.txt',
    keyWarning: true,
    draft: {
      upstream_model: 'gpt-5',
      base_url: 'https://api.openai.com/v1',
      wire: 'openai',
      api_key_env: 'OPENAI_API_KEY',
      headers: {},
      request_fields: {},
      thinking: { style: 'reasoning_effort', default_effort: 'minimal' },
      source: 'python',
    },
  },
  {
    file: 'anthropic-curl.txt',
    keyWarning: false,
    draft: {
      upstream_model: 'claude-sonnet-4-5',
      base_url: 'https://api.anthropic.com/v1',
      wire: 'anthropic',
      api_key_env: 'ANTHROPIC_API_KEY',
      headers: { 'anthropic-version': '2023-06-01' },
      request_fields: {},
      thinking: { style: 'anthropic_budget', budget_tokens: 10000, default_on: true },
      max_tokens: 16000,
      source: 'curl',
    },
  },
  {
    file: 'anthropic-python.txt',
    keyWarning: true,
    draft: {
      upstream_model: 'claude-opus-4-1',
      base_url: 'https://api.anthropic.com/v1',
      wire: 'anthropic',
      api_key_env: 'ANTHROPIC_API_KEY',
      headers: {},
      request_fields: {},
      thinking: { style: 'anthropic_budget', budget_tokens: 8000, default_on: true },
      max_tokens: 16000,
      source: 'python',
    },
  },
  {
    file: 'deepseek-curl.txt',
    keyWarning: false,
    draft: {
      upstream_model: 'deepseek-v4-pro',
      base_url: 'https://api.deepseek.com',
      wire: 'openai',
      api_key_env: 'DEEPSEEK_API_KEY',
      headers: {},
      request_fields: { thinking: { type: 'enabled' } },
      thinking: { style: 'thinking_type', default_on: true },
      source: 'curl',
    },
  },
  {
    file: 'deepseek-python.txt',
    keyWarning: false,
    draft: {
      upstream_model: 'deepseek-v4-flash',
      base_url: 'https://api.deepseek.com',
      wire: 'openai',
      api_key_env: 'DEEPSEEK_API_KEY',
      headers: {},
      request_fields: { thinking: { type: 'enabled' } },
      thinking: { style: 'thinking_type', default_on: true },
      source: 'python',
    },
  },
  {
    file: 'deepseek-javascript.txt',
    keyWarning: false,
    draft: {
      upstream_model: 'deepseek-v4-flash',
      base_url: 'https://api.deepseek.com',
      wire: 'openai',
      api_key_env: 'DEEPSEEK_API_KEY',
      headers: {},
      request_fields: {},
      source: 'javascript',
    },
  },
  {
    file: 'dashscope-python.txt',
    keyWarning: false,
    draft: {
      upstream_model: 'qwen-plus',
      base_url: 'https://dashscope-intl.aliyuncs.com/compatible-mode/v1',
      wire: 'openai',
      api_key_env: 'DASHSCOPE_API_KEY',
      headers: {},
      request_fields: { enable_thinking: true },
      thinking: { style: 'enable_thinking', param: 'enable_thinking', default_on: true },
      source: 'python',
    },
  },
  {
    file: 'dashscope-curl.txt',
    keyWarning: false,
    draft: {
      upstream_model: 'qwen-plus',
      base_url: 'https://dashscope-intl.aliyuncs.com/compatible-mode/v1',
      wire: 'openai',
      api_key_env: 'DASHSCOPE_API_KEY',
      headers: {},
      request_fields: { enable_thinking: true },
      thinking: { style: 'enable_thinking', param: 'enable_thinking', default_on: true },
      source: 'curl',
    },
  },
  {
    file: 'moonshot-python.txt',
    keyWarning: false,
    draft: {
      upstream_model: 'kimi-k2-0905-preview',
      base_url: 'https://api.moonshot.ai/v1',
      wire: 'openai',
      api_key_env: 'MOONSHOT_API_KEY',
      headers: {},
      request_fields: {},
      source: 'python',
    },
  },
  {
    file: 'openrouter-fetch.txt',
    keyWarning: false,
    warnings: [/placeholders/],
    draft: {
      upstream_model: 'openai/gpt-5',
      base_url: 'https://openrouter.ai/api/v1',
      wire: 'openai',
      api_key_env: 'OPENROUTER_API_KEY',
      headers: { 'HTTP-Referer': '<YOUR_SITE_URL>', 'X-Title': '<YOUR_SITE_NAME>' },
      request_fields: { reasoning: { effort: 'high' } },
      thinking: { style: 'openrouter_reasoning', default_effort: 'high' },
      source: 'javascript',
    },
  },
  {
    file: 'openrouter-javascript.txt',
    keyWarning: true,
    draft: {
      upstream_model: 'anthropic/claude-sonnet-4.5',
      base_url: 'https://openrouter.ai/api/v1',
      wire: 'openai',
      api_key_env: 'OPENROUTER_API_KEY',
      headers: { 'HTTP-Referer': 'https://chat.example.org', 'X-Title': 'Example Chat' },
      request_fields: { reasoning: { max_tokens: 2000 } },
      thinking: { style: 'openrouter_reasoning', budget_tokens: 2000 },
      source: 'javascript',
    },
  },
  {
    file: 'together-curl.txt',
    keyWarning: false,
    draft: {
      upstream_model: 'meta-llama/Llama-3.3-70B-Instruct-Turbo',
      base_url: 'https://api.together.xyz/v1',
      wire: 'openai',
      api_key_env: 'TOGETHER_API_KEY',
      headers: {},
      request_fields: { top_k: 50, repetition_penalty: 1 },
      max_tokens: 512,
      source: 'curl',
    },
  },
  {
    file: 'together-python.txt',
    keyWarning: true,
    draft: {
      upstream_model: 'Qwen/Qwen3-235B-A22B-Thinking-2507',
      base_url: 'https://api.together.xyz/v1',
      wire: 'openai',
      api_key_env: 'TOGETHER_API_KEY',
      headers: {},
      request_fields: { repetition_penalty: 1.05 },
      max_tokens: 1024,
      source: 'python',
    },
  },
  {
    file: 'fireworks-curl.txt',
    keyWarning: true,
    draft: {
      upstream_model: 'accounts/fireworks/models/kimi-k2-instruct-0905',
      base_url: 'https://api.fireworks.ai/inference/v1',
      wire: 'openai',
      api_key_env: 'FIREWORKS_API_KEY',
      headers: {},
      request_fields: { top_k: 40 },
      max_tokens: 4096,
      source: 'curl',
    },
  },
  {
    file: 'fireworks-python.txt',
    keyWarning: false,
    draft: {
      upstream_model: 'accounts/fireworks/models/deepseek-v3p1',
      base_url: 'https://api.fireworks.ai/inference/v1',
      wire: 'openai',
      api_key_env: 'FIREWORKS_API_KEY',
      headers: {},
      request_fields: { top_k: 40 },
      thinking: { style: 'reasoning_effort', default_effort: 'medium' },
      max_tokens: 20480,
      source: 'python',
    },
  },
  {
    file: 'nearai-python.txt',
    keyWarning: false,
    draft: {
      upstream_model: 'deepseek-ai/DeepSeek-V3.1',
      base_url: 'https://cloud-api.near.ai/v1',
      wire: 'openai',
      api_key_env: 'NEARAI_API_KEY',
      headers: {},
      request_fields: { chat_template_kwargs: { thinking: true } },
      thinking: { style: 'nearai_chat_template', param: 'thinking', default_on: true },
      max_tokens: 2048,
      source: 'python',
    },
  },
  {
    file: 'zai-curl.txt',
    keyWarning: false,
    draft: {
      upstream_model: 'glm-4.6',
      base_url: 'https://api.z.ai/api/paas/v4',
      wire: 'openai',
      api_key_env: 'ZAI_API_KEY',
      headers: { 'Accept-Language': 'en-US,en' },
      request_fields: { thinking: { type: 'enabled' } },
      thinking: { style: 'thinking_type', default_on: true },
      max_tokens: 4096,
      source: 'curl',
    },
  },
  {
    file: 'minimax-python.txt',
    keyWarning: false,
    warnings: [/OPENAI_API_KEY.*MINIMAX_API_KEY/],
    draft: {
      upstream_model: 'MiniMax-M2',
      base_url: 'https://api.minimax.io/v1',
      wire: 'openai',
      api_key_env: 'MINIMAX_API_KEY',
      headers: {},
      request_fields: { reasoning_split: true },
      source: 'python',
    },
  },
  {
    file: 'groq-curl.txt',
    keyWarning: false,
    draft: {
      upstream_model: 'openai/gpt-oss-120b',
      base_url: 'https://api.groq.com/openai/v1',
      wire: 'openai',
      api_key_env: 'GROQ_API_KEY',
      headers: {},
      request_fields: {},
      thinking: { style: 'reasoning_effort', default_effort: 'medium' },
      max_tokens: 8192,
      source: 'curl',
    },
  },
  {
    file: 'mistral-curl.txt',
    keyWarning: false,
    draft: {
      upstream_model: 'mistral-large-latest',
      base_url: 'https://api.mistral.ai/v1',
      wire: 'openai',
      api_key_env: 'MISTRAL_API_KEY',
      headers: {},
      request_fields: { safe_prompt: false },
      source: 'curl',
    },
  },
  {
    file: 'azure-openai-curl.txt',
    keyWarning: true,
    draft: {
      upstream_model: 'gpt-4o',
      base_url: 'https://contoso-eastus.openai.azure.com',
      wire: 'azure-openai',
      api_key_env: 'AZURE_OPENAI_API_KEY',
      headers: {},
      request_fields: {},
      max_tokens: 800,
      query: { 'api-version': '2024-10-21' },
      source: 'curl',
    },
  },
  {
    file: 'xai-curl.txt',
    keyWarning: false,
    draft: {
      upstream_model: 'grok-3-mini',
      base_url: 'https://api.x.ai/v1',
      wire: 'openai',
      api_key_env: 'XAI_API_KEY',
      headers: {},
      request_fields: {},
      thinking: { style: 'reasoning_effort', default_effort: 'high' },
      source: 'curl',
    },
  },
];

function parsed(input: string) {
  const r = parseExample(input);
  if (!r.ok) throw new Error(`expected ok, got ${r.code}: ${r.error}`);
  return r;
}

describe('parseExample: vendor fixtures', () => {
  it('every fixture file has an expectation (and at least 14 exist)', () => {
    const files = readdirSync(FIXTURES).filter((f) => f.endsWith('.txt')).sort();
    expect(files.length).toBeGreaterThanOrEqual(14);
    expect(CASES.map((c) => c.file).sort()).toEqual(files);
  });

  it.each(CASES)('$file', ({ file, draft, keyWarning, warnings }) => {
    const r = parsed(fixture(file));
    expect(r.draft).toEqual(draft);
    expect(r.warnings.includes(KEY_DROPPED_WARNING)).toBe(keyWarning);
    for (const w of warnings ?? []) expect(r.warnings.some((x) => w.test(x))).toBe(true);
    const json = JSON.stringify(r);
    for (const key of FAKE_KEYS) expect(json).not.toContain(key);
  });

  it('the fake keys really are in the fixtures (the leak test is not vacuous)', () => {
    const all = CASES.map((c) => fixture(c.file)).join('\n');
    for (const key of FAKE_KEYS) expect(all).toContain(key);
  });
});

describe('parseExample: formats and details', () => {
  it('curl on one line, URL last, literal key, unknown host', () => {
    const key = 'sk-' + 'Zq8rT2mV9xLp4KwN7cJd1HfB3sYe6GuA';
    const r = parsed(
      `curl -sS -H 'Authorization: Bearer ${key}' -H "X-Request-Source: docs" -d '{"model":"acme-large","messages":[],"top_k":5}' https://llm.acme-labs.io/v1/chat/completions`,
    );
    expect(r.draft).toMatchObject({
      upstream_model: 'acme-large',
      base_url: 'https://llm.acme-labs.io/v1',
      wire: 'openai',
      api_key_env: 'ACME_LABS_API_KEY',
      headers: { 'X-Request-Source': 'docs' },
      request_fields: { top_k: 5 },
    });
    expect(r.warnings).toContain(KEY_DROPPED_WARNING);
    expect(JSON.stringify(r)).not.toContain(key);
  });

  it('curl with a double-quoted body and escaped quotes, --data-raw, ${VAR}', () => {
    const r = parsed(
      'curl "https://api.example.co.uk/v1/chat/completions" \\\n  -H "Authorization: Bearer ${EXAMPLE_LLM_KEY}" \\\n  --data-raw "{\\"model\\": \\"ex-1\\", \\"messages\\": [], \\"max_tokens\\": 64}"',
    );
    expect(r.draft).toMatchObject({
      upstream_model: 'ex-1',
      base_url: 'https://api.example.co.uk/v1',
      api_key_env: 'EXAMPLE_LLM_KEY',
      max_tokens: 64,
    });
    expect(r.warnings).not.toContain(KEY_DROPPED_WARNING);
  });

  it('an exported key before the curl command is dropped and reported', () => {
    const key = 'sk-proj-' + 'Q1w2E3r4T5y6U7i8O9p0AaSsDdFfGgHhJjKk';
    const r = parsed(`export OPENAI_API_KEY="${key}"\ncurl https://api.openai.com/v1/chat/completions -H "Authorization: Bearer $OPENAI_API_KEY" -d '{"model":"gpt-5","messages":[]}'`);
    expect(r.draft.api_key_env).toBe('OPENAI_API_KEY');
    expect(r.warnings).toContain(KEY_DROPPED_WARNING);
    expect(JSON.stringify(r)).not.toContain(key);
  });

  it('a key in the URL query is dropped; only api-version is kept as query', () => {
    const key = 'AIza' + 'SyD3xAmPl3kEyV4lu3Th4tIsFakeXYZ12345';
    const r = parsed(
      `curl "https://generativelanguage.googleapis.com/v1beta/openai/chat/completions?key=${key}" -d '{"model":"gemini-2.5-flash","messages":[],"reasoning_effort":"low"}'`,
    );
    expect(r.draft.base_url).toBe('https://generativelanguage.googleapis.com/v1beta/openai');
    expect(r.draft.api_key_env).toBe('GEMINI_API_KEY');
    expect(r.draft.query).toBeUndefined();
    expect(r.warnings).toContain(KEY_DROPPED_WARNING);
    expect(JSON.stringify(r)).not.toContain(key);
  });

  it('custom auth-like headers and key-like body values never reach the draft', () => {
    const key = 'sk-' + 'Lm3Nb5Vc7Xz9Qw1Er3Ty5Ui7Op9As1Df';
    const r = parsed(
      `curl https://api.acme.dev/v1/chat/completions -H "X-Acme-Token: ${key}" -H "Cookie: session=abc123def456" -H "X-Region: eu" -d '{"model":"m1","messages":[],"vendor_opts":{"pass":"${key}","mode":"fast"}}'`,
    );
    expect(r.draft.headers).toEqual({ 'X-Region': 'eu' });
    expect(r.draft.request_fields).toEqual({ vendor_opts: { mode: 'fast' } });
    expect(r.warnings).toContain(KEY_DROPPED_WARNING);
    expect(JSON.stringify(r)).not.toContain(key);
    expect(JSON.stringify(r)).not.toContain('abc123def456');
  });

  it('anthropic SDK pointed at a compatible endpoint gets /v1 and the anthropic wire', () => {
    const r = parsed(`import anthropic
client = anthropic.Anthropic(base_url="https://api.deepseek.com/anthropic", api_key=os.environ["DEEPSEEK_API_KEY"])
message = client.messages.create(model="deepseek-v4-pro", max_tokens=1000, messages=[{"role": "user", "content": "Hi"}])`);
    expect(r.draft).toMatchObject({
      base_url: 'https://api.deepseek.com/anthropic/v1',
      wire: 'anthropic',
      api_key_env: 'DEEPSEEK_API_KEY',
      upstream_model: 'deepseek-v4-pro',
      max_tokens: 1000,
    });
  });

  it('requests.post with url/headers/json variables; python literals become JSON', () => {
    const r = parsed(`import requests, os
API_URL = 'https://api.example.ai/v1/chat/completions'
headers = {'Authorization': f"Bearer {os.environ['EXAMPLE_API_KEY']}", 'X-Title': 'My bot'}
data = {'model': 'ex-2', 'messages': [], 'top_k': None, 'safe': False, 'opts': {'a': (1, 2)}, 'stream': True,}
r = requests.post(API_URL, headers=headers, json=data)`);
    expect(r.draft).toMatchObject({
      upstream_model: 'ex-2',
      base_url: 'https://api.example.ai/v1',
      api_key_env: 'EXAMPLE_API_KEY',
      headers: { 'X-Title': 'My bot' },
      request_fields: { top_k: null, safe: false, opts: { a: [1, 2] } },
      source: 'python',
    });
  });

  it('fetch with a body variable, unquoted keys, trailing commas and process.env', () => {
    const r = parsed(`const url = "https://api.venice.ai/api/v1/chat/completions";
const payload = {
  model: 'qwen3-235b', // comment
  messages: [{ role: 'user', content: 'hi' },],
  venice_parameters: { include_venice_system_prompt: false, },
  max_tokens: 300,
};
const res = await fetch(url, {
  method: 'POST',
  headers: { Authorization: \`Bearer \${process.env.VENICE_API_KEY}\`, 'Content-Type': 'application/json' },
  body: JSON.stringify(payload),
});`);
    expect(r.draft).toMatchObject({
      upstream_model: 'qwen3-235b',
      base_url: 'https://api.venice.ai/api/v1',
      api_key_env: 'VENICE_API_KEY',
      headers: {},
      request_fields: { venice_parameters: { include_venice_system_prompt: false } },
      max_tokens: 300,
      source: 'javascript',
    });
  });

  it('qwen enable_thinking false and NEAR chat_template_kwargs enable_thinking', () => {
    const q = parsed(`from openai import OpenAI
client = OpenAI(api_key="sk-xxx", base_url="https://dashscope.aliyuncs.com/compatible-mode/v1")
c = client.chat.completions.create(model="qwen3-max", messages=[], extra_body={"enable_thinking": False})`);
    expect(q.draft.thinking).toEqual({ style: 'enable_thinking', param: 'enable_thinking', default_on: false });
    expect(q.warnings).not.toContain(KEY_DROPPED_WARNING);
    const n = parsed(`client = openai.OpenAI(base_url="https://cloud-api.near.ai/v1", api_key="<your-api-key>")
client.chat.completions.create(model="Qwen/Qwen3-30B-A3B-Instruct-2507", messages=[], extra_body={"chat_template_kwargs": {"enable_thinking": False}})`);
    expect(n.draft.thinking).toEqual({ style: 'nearai_chat_template', param: 'enable_thinking', default_on: false });
    expect(n.draft.api_key_env).toBe('NEARAI_API_KEY');
  });

  it('the openai SDK without base_url defaults to api.openai.com', () => {
    const r = parsed(`from openai import OpenAI
client = OpenAI()
client.chat.completions.create(model="gpt-4.1", messages=[{"role": "user", "content": "hi"}])`);
    expect(r.draft.base_url).toBe('https://api.openai.com/v1');
    expect(r.draft.api_key_env).toBe('OPENAI_API_KEY');
  });

  it('a JS AzureOpenAI-free azure v1 endpoint via the openai SDK is azure-openai', () => {
    const r = parsed(`import OpenAI from "openai";
const client = new OpenAI({ baseURL: "https://contoso.openai.azure.com/openai/v1/", apiKey: process.env.AZURE_OPENAI_API_KEY });
const out = await client.chat.completions.create({ model: "gpt-4.1-mini", messages: [] });`);
    expect(r.draft).toMatchObject({
      wire: 'azure-openai',
      base_url: 'https://contoso.openai.azure.com/openai/v1',
      upstream_model: 'gpt-4.1-mini',
      api_key_env: 'AZURE_OPENAI_API_KEY',
    });
  });

  it('async Python with await is still read as Python', () => {
    const r = parsed(`import asyncio
from openai import AsyncOpenAI

client = AsyncOpenAI(base_url="https://api.groq.com/openai/v1", api_key=os.environ.get("GROQ_API_KEY"))

async def main():
    resp = await client.chat.completions.create(model="qwen/qwen3-32b", messages=[], reasoning_effort="none", top_k=20)
asyncio.run(main())`);
    expect(r.draft).toMatchObject({
      source: 'python',
      upstream_model: 'qwen/qwen3-32b',
      base_url: 'https://api.groq.com/openai/v1',
      api_key_env: 'GROQ_API_KEY',
      thinking: { style: 'reasoning_effort' },
      request_fields: { top_k: 20 },
    });
  });

  it('AzureOpenAI SDK: resource endpoint + api_version (deployments style, matches the azure wire)', () => {
    const r = parsed(`import os
from openai import AzureOpenAI

client = AzureOpenAI(
    azure_endpoint="https://contoso.openai.azure.com/",
    api_key=os.getenv("AZURE_OPENAI_API_KEY"),
    api_version="2024-10-21",
)
response = client.chat.completions.create(model="gpt-4o-mini-deploy", messages=[{"role": "user", "content": "Hi"}])`);
    expect(r.draft).toMatchObject({
      wire: 'azure-openai',
      base_url: 'https://contoso.openai.azure.com',
      upstream_model: 'gpt-4o-mini-deploy',
      query: { 'api-version': '2024-10-21' },
      api_key_env: 'AZURE_OPENAI_API_KEY',
    });
  });

  it('anthropic adaptive thinking stays adaptive (no budget), its effort in the rule', () => {
    const r = parsed(`curl https://api.anthropic.com/v1/messages -H "x-api-key: $ANTHROPIC_API_KEY" -H "anthropic-version: 2023-06-01" -d '{"model":"claude-opus-4-7","max_tokens":2048,"thinking":{"type":"adaptive"},"messages":[]}'`);
    expect(r.draft.thinking).toEqual({ style: 'anthropic_budget', adaptive: true, default_on: true });
    expect(r.draft.request_fields).toEqual({});
    const e = parsed(`curl https://api.anthropic.com/v1/messages -H "x-api-key: $ANTHROPIC_API_KEY" -d '{"model":"claude-opus-4-7","max_tokens":2048,"thinking":{"type":"adaptive"},"output_config":{"effort":"high","format":"x"},"messages":[]}'`);
    expect(e.draft.thinking).toEqual({ style: 'anthropic_budget', adaptive: true, default_on: true, default_effort: 'high' });
    expect(e.draft.request_fields).toEqual({ output_config: { format: 'x' } });
  });

  it('anthropic `enabled` without a budget: anthropic_budget with no budget (one is sized at request time)', () => {
    const r = parsed(`curl https://api.anthropic.com/v1/messages -H "x-api-key: $ANTHROPIC_API_KEY" -d '{"model":"claude-sonnet-4-5","max_tokens":4096,"thinking":{"type":"enabled"},"messages":[]}'`);
    expect(r.draft.thinking).toEqual({ style: 'anthropic_budget', default_on: true });
    expect(r.draft.request_fields).toEqual({});
  });

  it('placeholder keys are dropped silently (no rotate warning)', () => {
    for (const k of ['YOUR_API_KEY', 'sk-xxxx', 'sk-...', '<your-api-key>', '$OPENAI_API_KEY', 'sk-xxxxxxxxxxxxxxxxxxxxxxxx']) {
      const r = parsed(`curl https://api.acme.dev/v1/chat/completions -H 'Authorization: Bearer ${k}' -d '{"model":"m"}'`);
      expect(r.warnings).not.toContain(KEY_DROPPED_WARNING);
      expect(JSON.stringify(r.draft.headers)).toBe('{}');
    }
  });
});

describe('parseExample: refusals', () => {
  const MARK = 'UNIQUE-MARKER-7f3a';
  const refusals: Array<[string, string, RegExp]> = [
    ['empty', '', /empty/i],
    ['whitespace', '   \n\t ', /empty/i],
    ['garbage', `hello there ${MARK}, how are you`, /not recognised/i],
    ['URL alone', `https://api.openai.com/v1/chat/completions ${MARK}`, /not recognised/i],
    ['curl without a URL', `curl -H "X: ${MARK}" -d '{"model":"m"}'`, /No endpoint URL/],
    ['curl without a model', `curl https://api.acme.dev/v1/chat/completions -d '{"messages":[], "x":"${MARK}"}'`, /No model name.*"model"/],
    ['curl with body from a file', `curl https://api.acme.dev/v1/chat/completions -d @${MARK}.json`, /could not be read.*@/],
    ['python without a model', `from openai import OpenAI\nclient = OpenAI(base_url="https://x.${MARK}.dev/v1")\nclient.chat.completions.create(messages=[])`, /No model name/],
    ['URL starting with an env var', `curl $AZURE_OPENAI_ENDPOINT/openai/deployments/gpt-4o/chat/completions -d '{"messages":[], "m":"${MARK}"}'`, /placeholder or environment variable/],
    ['placeholder host', `curl https://{your-resource-name}.openai.azure.com/openai/deployments/${MARK}/chat/completions -d '{}'`, /placeholder|not a valid/],
    ['placeholder model', `curl https://api.acme.dev/v1/chat/completions -d '{"model":"<${MARK}>"}'`, /placeholder/],
    ['unterminated quote', `curl https://api.acme.dev/v1/chat/completions -d '{"model":"${MARK}"`, /unterminated quote/],
  ];
  it.each(refusals)('%s', (_name, input, message) => {
    const r = parseExample(input);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.code).toBe('invalid_input');
    expect(r.error).toMatch(message);
    expect(r.error).not.toContain(MARK);
  });

  it('over 64 KB is too_large', () => {
    const r = parseExample('curl https://api.openai.com/v1/chat/completions -d \'{"model":"gpt-5"}\' ' + ' '.repeat(70 * 1024));
    expect(r).toMatchObject({ ok: false, code: 'too_large' });
    // multi-byte characters count as bytes
    const r2 = parseExample('curl https://a.dev/v1 -d \'{"model":"m"}\' ' + '通'.repeat(23 * 1024));
    expect(r2).toMatchObject({ ok: false, code: 'too_large' });
  });

  it('non-string input is refused, not thrown', () => {
    expect(parseExample(undefined as unknown as string)).toMatchObject({ ok: false, code: 'invalid_input' });
    expect(parseExample({} as unknown as string)).toMatchObject({ ok: false, code: 'invalid_input' });
  });

  it('a key never appears in an error message', () => {
    const key = 'sk-ant-api03-' + 'Ab12Cd34Ef56Gh78Ij90Kl12Mn34Op56Qr78St90';
    const inputs = [
      `curl -H "x-api-key: ${key}" -d '{"model":"m"}'`,
      `curl https://api.anthropic.com/v1/messages -H "x-api-key: ${key}" -d '{"messages":[]}'`,
      `import anthropic\nclient = anthropic.Anthropic(api_key="${key}")\nclient.messages.create(messages=[])`,
      `curl https://api.anthropic.com/v1/messages -H "x-api-key: ${key}" -d '{"model": "${key}"`,
    ];
    for (const input of inputs) {
      const r = parseExample(input);
      expect(JSON.stringify(r)).not.toContain(key);
    }
  });
});

describe('parseExample: size and pathological inputs are refused fast', () => {
  const LIMIT_MS = 500;
  const near = (unit: string) => unit.repeat(Math.floor((60 * 1024) / unit.length));
  const cases: Array<[string, string]> = [
    ['1 MB of text', 'a'.repeat(1024 * 1024)],
    ['1 MB curl', 'curl https://api.openai.com/v1/chat/completions -d \'' + '{"a":'.repeat(200_000)],
    ['100k of "(((', '"((('.repeat(25_000)],
    ['60 KB of "(((', near('"(((')],
    ['curl -H -H -H', 'curl ' + near('-H ')],
    ['curl -d -d -d', 'curl ' + near('-d ')],
    ['deep brackets in python', 'from openai import OpenAI\nclient.chat.completions.create(model=' + near('[')],
    ['deep braces in js', 'const x = 1; fetch("https://a.dev/v1/chat/completions", { body: JSON.stringify(' + near('{a:')],
    ['many fetch(', 'const a = 1;' + near('fetch(')],
    ['many create(', 'import openai\n' + near('.chat.completions.create(')],
    ['newlines', 'curl\n' + near('\n')],
    ['spaces after create', 'import x\n.create(' + near(' ')],
    ['quotes', 'curl ' + near('"\'')],
    ['keys everywhere', 'curl https://a.dev/v1/chat/completions ' + near('api_key=sk-abcdefghijklmnopqrstuvwx ')],
    ['f-string braces', 'import os\nx = f"' + near('{')],
    ['template literal', 'const x = `' + near('${')],
    ['backslashes', 'curl ' + near('\\')],
  ];
  it.each(cases)('%s', (_name, input) => {
    const t0 = performance.now();
    const r = parseExample(input);
    const ms = performance.now() - t0;
    expect(r.ok).toBe(false);
    expect(ms).toBeLessThan(LIMIT_MS);
  });

  it('1 MB input returns well under 100 ms', () => {
    const big = 'x'.repeat(1024 * 1024);
    const t0 = performance.now();
    const r = parseExample(big);
    expect(performance.now() - t0).toBeLessThan(100);
    expect(r).toMatchObject({ ok: false, code: 'too_large' });
  });
});

describe('parseExample: keys held in variables', () => {
  it('a key assigned to an innocuous variable and used in a header is reported', () => {
    const secret = '9f8e7d6c5b4a39281706f5e4d3c2b1a0';
    const r = parsed(`import requests
auth = "${secret}"
requests.post("https://api.acme.dev/v1/chat/completions", headers={"api-key": auth}, json={"model": "m"})`);
    expect(r.warnings).toContain(KEY_DROPPED_WARNING);
    expect(JSON.stringify(r)).not.toContain(secret);
  });
});

describe('parseExample: azure shapes match the azure-openai wire', () => {
  it('AzureOpenAI SDK without api_version uses the v1 API root', () => {
    const r = parsed(`from openai import AzureOpenAI
client = AzureOpenAI(azure_endpoint="https://contoso.openai.azure.com", api_key=os.getenv("AZURE_OPENAI_API_KEY"))
client.chat.completions.create(model="gpt-4.1", messages=[])`);
    expect(r.draft).toMatchObject({ wire: 'azure-openai', base_url: 'https://contoso.openai.azure.com/openai/v1', upstream_model: 'gpt-4.1' });
    expect(r.draft.query).toBeUndefined();
  });

  it('the deployment name wins over a different body model, with a warning', () => {
    const r = parsed(`curl "https://contoso.openai.azure.com/openai/deployments/prod-4o/chat/completions?api-version=2024-10-21" -H "api-key: $AZURE_OPENAI_API_KEY" -d '{"model":"gpt-4o","messages":[]}'`);
    expect(r.draft).toMatchObject({ base_url: 'https://contoso.openai.azure.com', upstream_model: 'prod-4o', query: { 'api-version': '2024-10-21' } });
    expect(r.warnings.some((w) => /deployment name/.test(w))).toBe(true);
  });
});
