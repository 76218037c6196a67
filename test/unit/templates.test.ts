import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { parse, stringify } from 'yaml';
import {
  DEFAULT_TEMPLATES_DIR,
  TemplateError,
  clearTemplateCache,
  editDistance,
  findTemplate,
  getTemplate,
  loadTemplates,
  normalize,
  suggestTemplates,
  templateModel,
} from '../../src/vendors/templates.ts';
import { Template } from '../../src/vendors/template-schema.ts';
import { localizeTemplateName, templateName } from '../../src/vendors/template-name.ts';

const IDS = [
  'anthropic', 'openai', 'xai', 'qwen', 'deepseek', 'kimi', 'mimo', 'gemini', 'gemma', 'near-ai',
  'venice', 'openrouter', 'minimax', 'zai', 'azure-openai', 'bedrock', 'fireworks', 'together',
  'huggingface', 'openai-compatible', 'qwen-code', 'gemini-cli', 'claude-code',
];

const templates = loadTemplates();

describe('curated templates', () => {
  it('has exactly the 20 vendors and the 3 OAuth-file CLIs, one file each, ids matching file names', () => {
    expect(templates.map((t) => t.id).sort()).toEqual([...IDS].sort());
    for (const id of IDS) expect(getTemplate(id)?.id).toBe(id);
  });

  it.each(IDS)('%s passes the schema and states what the issue requires', (id) => {
    const t = getTemplate(id)!;
    expect(Template.safeParse(t).success).toBe(true);
    expect(t.name.length).toBeGreaterThan(0);
    expect(t.aliases.length).toBeGreaterThan(0);
    expect(t.homepage).toMatch(/^https:\/\//);
    expect(t.env_var).toMatch(/^[A-Z][A-Z0-9_]*$/);
    expect(['openai', 'anthropic', 'azure-openai', 'bedrock', 'gemini-code-assist']).toContain(t.wire);
    expect(typeof t.model_discovery).toBe('boolean');
    expect(t.thinking.style).toBeTruthy();
    expect(t.notes.length).toBeGreaterThan(0);
    expect(t.notes_zh.length).toBe(t.notes.length);
    for (const zh of t.notes_zh) expect(zh).toMatch(/[\u4e00-\u9fff]/);
    if (t.base_url === null) {
      expect(t.base_url_hint, 'a user-supplied base URL needs a hint').toBeTruthy();
    } else {
      expect(t.base_url).toMatch(/^https:\/\//);
      expect(t.base_url).not.toMatch(/\/(chat\/completions|messages)\/?$/);
      expect(t.models.map((m) => m.id)).toContain(t.default_model);
    }
    expect(templateModel(t)?.id ?? t.default_model).toBe(t.default_model);
    for (const m of t.models) {
      expect(Object.keys(m.capabilities).sort()).toEqual(['json', 'reasoning', 'tools', 'vision']);
      if (m.pricing) {
        expect(m.pricing.input_per_mtok).toBeGreaterThanOrEqual(0);
        expect(m.pricing.output_per_mtok).toBeGreaterThanOrEqual(0);
        expect(m.pricing.currency).toMatch(/^[A-Z]{3}$/);
      }
      if (m.thinking?.style === 'nearai_chat_template' || m.thinking?.style === 'enable_thinking') {
        expect(m.thinking.param, `${id}/${m.id} needs the parameter name`).toBeTruthy();
      }
      if (m.thinking && m.thinking.style !== 'none' && m.thinking.style !== 'always_on') {
        expect(m.capabilities.reasoning, `${id}/${m.id} has a thinking switch`).toBe(true);
      }
    }
  });

  it('uses the vendors\u2019 own key variable names', () => {
    const env = Object.fromEntries(templates.map((t) => [t.id, t.env_var]));
    expect(env).toMatchObject({
      anthropic: 'ANTHROPIC_API_KEY', openai: 'OPENAI_API_KEY', xai: 'XAI_API_KEY', qwen: 'DASHSCOPE_API_KEY',
      deepseek: 'DEEPSEEK_API_KEY', kimi: 'MOONSHOT_API_KEY', gemini: 'GEMINI_API_KEY', gemma: 'GEMINI_API_KEY',
      'near-ai': 'NEARAI_API_KEY', venice: 'VENICE_API_KEY', openrouter: 'OPENROUTER_API_KEY',
      minimax: 'MINIMAX_API_KEY', zai: 'ZAI_API_KEY', 'azure-openai': 'AZURE_OPENAI_API_KEY',
      bedrock: 'AWS_ACCESS_KEY_ID', fireworks: 'FIREWORKS_API_KEY', together: 'TOGETHER_API_KEY', huggingface: 'HF_TOKEN',
    });
  });

  it('has the endpoints the brief names', () => {
    expect(getTemplate('qwen')!.base_url).toBe('https://dashscope-intl.aliyuncs.com/compatible-mode/v1');
    expect(getTemplate('qwen')!.notes.join(' ')).toContain('dashscope.aliyuncs.com');
    expect(getTemplate('gemini')!.base_url).toBe('https://generativelanguage.googleapis.com/v1beta/openai');
    expect(getTemplate('gemma')!.base_url).toBe(getTemplate('gemini')!.base_url);
    expect(getTemplate('near-ai')!.base_url).toBe('https://cloud-api.near.ai/v1');
    for (const id of ['azure-openai', 'huggingface', 'openai-compatible']) expect(getTemplate(id)!.base_url).toBeNull();
  });

  it('wires Azure, Bedrock and the generic endpoint as specified', () => {
    const az = getTemplate('azure-openai')!;
    expect(az.wire).toBe('azure-openai');
    expect(az.auth).toMatchObject({ scheme: 'header', header: 'api-key' });
    expect(az.default_query['api-version']).toMatch(/^\d{4}-\d{2}-\d{2}/);
    expect(az.model_discovery).toBe(false);

    const br = getTemplate('bedrock')!;
    expect(br.wire).toBe('bedrock');
    expect(br.base_url).toBe('https://bedrock-runtime.us-east-1.amazonaws.com');
    expect(br.settings.region).toBe('us-east-1');
    expect(br.auth.scheme).toBe('aws-sigv4');
    expect(br.extra_env_vars).toEqual(['AWS_SECRET_ACCESS_KEY']);
    expect(br.notes.join(' ')).toContain('AWS_BEARER_TOKEN_BEDROCK');
    expect(br.model_discovery).toBe(false);

    const oc = getTemplate('openai-compatible')!;
    expect(oc.auth.optional).toBe(true);
    expect(getTemplate('huggingface')!.model_discovery).toBe(false);
    expect(getTemplate('anthropic')!.auth).toMatchObject({ scheme: 'header', header: 'x-api-key' });
  });

  it('states the thinking rules', () => {
    expect(getTemplate('openai')!.thinking.style).toBe('reasoning_effort');
    expect(getTemplate('anthropic')!.thinking.style).toBe('anthropic_budget');
    expect(getTemplate('qwen')!.thinking).toMatchObject({ style: 'enable_thinking', param: 'enable_thinking' });
    expect(getTemplate('openrouter')!.thinking.style).toBe('openrouter_reasoning');
    expect(getTemplate('deepseek')!.thinking.style).toBe('thinking_type');
    const opus47 = templateModel(getTemplate('anthropic')!, 'claude-opus-4-7')!;
    expect(opus47.thinking).toMatchObject({ style: 'anthropic_budget', adaptive: true });
    for (const t of templates) {
      for (const m of t.models) if (/gpt-oss/.test(m.id)) expect(m.thinking?.style, `${t.id}/${m.id}`).toBe('always_on');
    }
  });

  it('NEAR lists only TEE models, with per-model chat_template_kwargs names', () => {
    const near = getTemplate('near-ai')!;
    expect(near.models.length).toBeGreaterThan(3);
    for (const m of near.models) expect(m.tee, m.id).toBe(true);
    expect(near.default_model).toBe('Qwen/Qwen3.6-35B-A3B-FP8');
    const q35 = templateModel(near, 'Qwen/Qwen3.5-122B-A10B')!;
    expect(q35.thinking).toMatchObject({ style: 'nearai_chat_template', param: 'enable_thinking', disabled: true });
    expect(templateModel(near, 'zai-org/GLM-5.1-FP8')!.thinking).toMatchObject({ param: 'enable_thinking' });
    expect(templateModel(near, 'openai/gpt-oss-120b')!.thinking!.style).toBe('always_on');
    const notes = near.notes.join(' ');
    expect(notes).toMatch(/TEE/);
    expect(notes).toMatch(/non-TEE/);
    expect(notes).toMatch(/weakens privacy/);
    expect(near.notes_zh.join(' ')).toMatch(/非 TEE/);
  });

  it('xAI explains that a subscription is not API access', () => {
    const x = getTemplate('xai')!;
    expect(x.homepage).toBe('https://console.x.ai');
    expect(x.notes.join(' ')).toMatch(/X Premium.*SuperGrok.*not API access/);
    expect(x.notes.join(' ')).toContain('console.x.ai');
    expect(x.notes_zh.join(' ')).toMatch(/SuperGrok/);
  });

  it('a Chinese display name, where present, is Chinese and shown to Chinese users only', () => {
    const named = templates.filter((t) => t.name_zh !== undefined);
    expect(named.map((t) => t.id)).toEqual(expect.arrayContaining(['qwen', 'deepseek', 'kimi', 'mimo', 'zai', 'openai-compatible', 'qwen-code']));
    for (const t of named) expect(t.name_zh, t.id).toMatch(/[\u4e00-\u9fff]/);
    const qwen = getTemplate('qwen')!;
    expect(templateName(qwen, 'zh')).toBe('通义千问（阿里云百炼 / DashScope）');
    expect(templateName(qwen, 'en')).toBe(qwen.name);
    // A brand-only name has no Chinese one and stays as it is.
    expect(templateName(getTemplate('openrouter')!, 'zh')).toBe('OpenRouter');
    // A name recorded in English (a key notice from the worker) is shown in Chinese, host kept.
    expect(localizeTemplateName(`${qwen.name} (dashscope.aliyuncs.com)`, 'zh')).toBe('通义千问（阿里云百炼 / DashScope） (dashscope.aliyuncs.com)');
    expect(localizeTemplateName('llm.example.com', 'zh')).toBe('llm.example.com');
    expect(Template.safeParse({ ...qwen, name_zh: '' }).success).toBe(false);
  });

  it('no alias is claimed twice', () => {
    const seen = new Map<string, string>();
    for (const t of templates) {
      for (const a of [t.id, ...t.aliases]) {
        const k = normalize(a);
        if (seen.has(k) && seen.get(k) !== t.id) throw new Error(`${a} in ${t.id} and ${seen.get(k)}`);
        seen.set(k, t.id);
      }
    }
  });

  it('caches per directory', () => {
    expect(loadTemplates()).toBe(templates);
    expect(loadTemplates(DEFAULT_TEMPLATES_DIR)).toBe(templates);
  });
});

describe('findTemplate', () => {
  it.each([
    ['通义千问', 'qwen'], ['通义', 'qwen'], ['千问', 'qwen'], ['阿里云百炼', 'qwen'], ['小米', 'mimo'],
    ['月之暗面', 'kimi'], ['智谱', 'zai'], ['智谱清言', 'zai'], ['深度求索', 'deepseek'], ['克劳德', 'anthropic'],
    ['谷歌', 'gemini'], ['亚马逊云科技', 'bedrock'], ['微软', 'azure-openai'], ['抱抱脸', 'huggingface'],
  ])('Chinese alias %s -> %s', (q, id) => {
    expect(findTemplate(q)?.id).toBe(id);
  });

  it.each([
    ['claude', 'anthropic'], ['Claude', 'anthropic'], ['GPT', 'openai'], ['ChatGPT', 'openai'], ['grok', 'xai'],
    ['moonshot', 'kimi'], ['GLM', 'zai'], ['DashScope', 'qwen'], ['aws', 'bedrock'], ['Azure', 'azure-openai'],
    ['hf', 'huggingface'], ['Open Router', 'openrouter'], ['NEAR AI', 'near-ai'], ['near-ai', 'near-ai'],
    ['Z.ai', 'zai'], ['x.ai', 'xai'], ['  DeepSeek!! ', 'deepseek'], ['openai compatible', 'openai-compatible'],
    ['Hugging Face', 'huggingface'], ['Together.ai', 'together'],
  ])('id or alias %s -> %s (case, spaces, punctuation ignored)', (q, id) => {
    expect(findTemplate(q)?.id).toBe(id);
  });

  it.each([
    ['add my Claude key', 'anthropic'],
    ['我的通义千问', 'qwen'],
    ['帮我接入智谱的模型', 'zai'],
    ['I want to use my OpenRouter account', 'openrouter'],
    ['please add deepseek for me', 'deepseek'],
    ['use gemma 4 please', 'gemma'],
    ['add a custom qwen key', 'qwen'],
    ['my local ollama server', 'openai-compatible'],
  ])('finds a vendor inside "%s"', (q, id) => {
    expect(findTemplate(q)?.id).toBe(id);
  });

  it('answers undefined when nothing matches', () => {
    expect(findTemplate('')).toBeUndefined();
    expect(findTemplate('   ')).toBeUndefined();
    expect(findTemplate('hello there')).toBeUndefined();
    expect(findTemplate('anthropc')).toBeUndefined();
  });
});

describe('suggestTemplates', () => {
  it.each([
    ['anthropc', 'anthropic'], ['deepsek', 'deepseek'], ['opnai', 'openai'], ['gemni', 'gemini'],
    ['qwne', 'qwen'], ['openruter', 'openrouter'], ['mistral', undefined], ['hugingface', 'huggingface'],
    ['fierworks', 'fireworks'], ['antrhopic', 'anthropic'],
  ])('%s -> %s first', (q, id) => {
    const s = suggestTemplates(q);
    if (id === undefined) expect(s.length).toBeLessThanOrEqual(3);
    else expect(s[0]?.id).toBe(id);
  });

  it('returns at most n, nothing for unrelated words', () => {
    expect(suggestTemplates('gem', 1).length).toBeLessThanOrEqual(1);
    expect(suggestTemplates('zzzzqqqq')).toEqual([]);
    expect(suggestTemplates('')).toEqual([]);
    expect(suggestTemplates('deepsek', 0)).toEqual([]);
  });

  it('editDistance counts transpositions as one edit', () => {
    expect(editDistance('anthropic', 'anthropic')).toBe(0);
    expect(editDistance('antrhopic', 'anthropic')).toBe(1);
    expect(editDistance('deepsek', 'deepseek')).toBe(1);
    expect(editDistance('', 'abc')).toBe(3);
  });
});

describe('broken templates', () => {
  let dir: string;
  const good = parse(readFileSync(join(DEFAULT_TEMPLATES_DIR, 'qwen.yaml'), 'utf8')) as Record<string, unknown>;
  const clone = (): any => structuredClone(good);

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'byok-templates-'));
  });
  afterEach(() => {
    clearTemplateCache(dir);
    rmSync(dir, { recursive: true, force: true });
  });

  function write(name: string, data: unknown): void {
    writeFileSync(join(dir, name), typeof data === 'string' ? data : stringify(data));
  }
  function failure(): TemplateError {
    try {
      loadTemplates(dir);
    } catch (err) {
      expect(err).toBeInstanceOf(TemplateError);
      return err as TemplateError;
    }
    throw new Error('expected loadTemplates to throw');
  }
  const label = () => basename(dir);

  it('loads a good copy', () => {
    write('qwen.yaml', clone());
    expect(loadTemplates(dir).map((t) => t.id)).toEqual(['qwen']);
  });

  it('names the file and the nested field of a wrong type', () => {
    const t = clone();
    t.models[0].capabilities.json = 'yes';
    write('qwen.yaml', t);
    const e = failure();
    expect(e.message).toMatch(new RegExp(`^${label()}/qwen\\.yaml: models\\.0\\.capabilities\\.json: expected boolean`));
    expect(e.file).toBe(`${label()}/qwen.yaml`);
    expect(e.field).toBe('models.0.capabilities.json');
  });

  it('names a missing required field', () => {
    const t = clone();
    delete t.env_var;
    write('qwen.yaml', t);
    expect(failure().message).toBe(`${label()}/qwen.yaml: env_var: required`);
  });

  it('names an unknown field', () => {
    const t = clone();
    t.models[1].colour = 'blue';
    write('qwen.yaml', t);
    expect(failure().message).toBe(`${label()}/qwen.yaml: models.1.colour: unknown field`);
  });

  it('names a bad URL, a bad enum and a bad env var', () => {
    let t = clone();
    t.homepage = 'not a url';
    write('qwen.yaml', t);
    expect(failure().message).toMatch(/qwen\.yaml: homepage: /);

    clearTemplateCache(dir);
    t = clone();
    t.wire = 'grpc';
    write('qwen.yaml', t);
    expect(failure().message).toMatch(/qwen\.yaml: wire: /);

    clearTemplateCache(dir);
    t = clone();
    t.env_var = 'dashscope-key';
    write('qwen.yaml', t);
    expect(failure().message).toMatch(/qwen\.yaml: env_var: /);

    clearTemplateCache(dir);
    t = clone();
    t.models[0].thinking.style = 'telepathy';
    write('qwen.yaml', t);
    expect(failure().message).toMatch(/qwen\.yaml: models\.0\.thinking\.style: /);
  });

  it('names a default model that is not in the list', () => {
    const t = clone();
    t.default_model = 'qwen-nonexistent';
    write('qwen.yaml', t);
    expect(failure().message).toMatch(/qwen\.yaml: default_model: .*qwen-nonexistent/);
  });

  it('reports invalid YAML with its line', () => {
    write('qwen.yaml', 'id: qwen\nname: [unclosed\n');
    expect(failure().message).toMatch(/qwen\.yaml: invalid YAML/);
  });

  it('refuses a non-mapping document', () => {
    write('qwen.yaml', '- just\n- a list\n');
    expect(failure().message).toMatch(/qwen\.yaml: expected a YAML mapping/);
  });

  it('refuses an id that does not match the file name', () => {
    write('tongyi.yaml', clone());
    expect(failure().message).toBe(`${label()}/tongyi.yaml: id: "qwen" does not match the file name "tongyi"`);
  });

  it('detects an alias claimed by two templates (case and punctuation ignored)', () => {
    write('qwen.yaml', clone());
    const other = clone();
    other.id = 'other';
    other.aliases = ['something', 'Tong-Yi'];
    write('other.yaml', other);
    const e = failure();
    expect(e.message).toMatch(/qwen\.yaml: aliases\.\d+: "tongyi" is already claimed by .*other\.yaml/);
  });

  it('detects an alias equal to another template id', () => {
    write('qwen.yaml', clone());
    const other = clone();
    other.id = 'alpha';
    other.aliases = ['QWEN'];
    write('alpha.yaml', other);
    expect(failure().message).toMatch(/qwen\.yaml: id: "qwen" is already claimed by .*alpha\.yaml/);
  });

  it('detects a duplicate model id', () => {
    const t = clone();
    t.models[1].id = t.models[0].id;
    write('qwen.yaml', t);
    expect(failure().message).toMatch(/qwen\.yaml: models\.1\.id: duplicate model id/);
  });

  it('refuses an empty folder', () => {
    expect(failure().message).toMatch(/no \*\.yaml templates/);
  });
});
