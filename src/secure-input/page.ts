import { formatTime } from '../chat/time.ts';
import { catalogue, t, type Lang, type MessageKey } from '../i18n/index.ts';
import { MAX_FILE_BYTES, MAX_KEY_BYTES, type CredentialForm, type CredentialOption } from './credential-form.ts';
import type { DeadReason, EnvInputRecord } from './tokens.ts';

/**
 * Server-rendered HTML for the one-time form. No inline script or style (the CSP forbids
 * them): the behaviour is `/assets/form.js`, the look `/assets/form.css`. Everything dynamic
 * is HTML-escaped; the client gets its data through `data-*` attributes.
 *
 * The inputs deliberately have no `name` attribute and the submit button starts disabled: if
 * the script does not run, a native form submission can never carry the plaintext key.
 */

/** Strings the shared catalogue does not have (page-only). */
const EXTRA: Record<Lang, Record<string, string>> = {
  en: {
    heading: 'Add your {vendor} key',
    heading_file: 'Add your {vendor} credentials file',
    key_label: 'Key for {env}',
    lead: 'For the chat bot, model {model}.',
    used: 'This link was already used. The result is sent to your chat.',
    voided: 'This link was replaced by a newer one. Use the latest link the bot sent you.',
    expired: 'This link has expired.',
    ask_again: 'Ask the bot for a new one: {cmd}',
    gone_title: 'Link no longer valid',
    not_found_title: 'Link not found',
    not_found_body: 'Check that you opened the whole link the bot sent you.',
    loading: 'Preparing encryption…',
    sealing: 'Sealing…',
    sending: 'Sending the sealed key…',
    too_many: 'Too many attempts. Wait a minute and try again.',
    used_now: 'This link was already used or has expired. Ask the bot for a new one.',
    still_checking: 'Still checking. You will also get the result in the chat; you can close this page.',
    what_to_do: 'What to do: ',
    no_js: 'This form needs JavaScript: your key is encrypted in the browser before it leaves this page.',
    crypto_failed: 'Encryption could not start in this browser. Try another browser.',
    expires_in: 'expires in {min} min',
    expired_now: 'This link has expired. Ask the bot for a new one.',
    forbidden: 'This link must be opened from the chat that requested it.',
    bad_request: 'The form could not be sent: {msg}',
    homepage_note: 'Create or copy your key there, then paste it here — never into the chat.',
    error_generic: 'Something went wrong on the server. Try again in a moment.',
    busy: 'The service is busy. Reload this page in a moment: your link is still valid.',
    choice_legend: 'What do you want to use?',
    kind_aws_keypair: 'IAM access key pair',
    kind_bedrock_key: 'Bedrock API key (ABSK…)',
    kind_bearer: 'Bearer token',
    kind_api_key: 'API key',
    kind_oauth_json: 'Credentials file',
    file_label: 'Credentials file (JSON) for {env}',
    file_hint: 'Open {path} on the computer where you signed in to the CLI and paste its whole content. At most 16 KiB.',
    file_hint_generic: 'Paste the whole content of the credentials file your CLI wrote. At most 16 KiB.',
    file_too_big: 'The credentials file is larger than {kib} KiB. Paste only the JSON file the CLI wrote.',
    project_label: 'Google Cloud project ID (optional)',
    project_hint: 'Only if your account needs one (Workspace or paid Gemini Code Assist). Not secret.',
    bad_project: 'This is not a Google Cloud project ID: 6–30 lowercase letters, digits or hyphens, starting with a letter.',
    keep_label: 'Keep this key',
    keep_label_file: 'Keep this login',
    keep_1: '1 day',
    keep_7: '7 days',
    keep_30: '30 days',
    keep_never: 'Never expires',
    keep_hint: 'After this the key is deleted and the bot asks for a new one.',
    keep_hint_file: 'After this the stored login is deleted and the bot asks for a new credentials file.',
  },
  zh: {
    heading: '添加你的 {vendor} 密钥',
    heading_file: '添加你的 {vendor} 凭据文件',
    key_label: '{env} 的值',
    lead: '用于聊天机器人中的模型 {model}。',
    used: '此链接已被使用，结果会发送到你的聊天中。',
    voided: '此链接已被新的链接取代。请使用机器人最新发送的链接。',
    expired: '此链接已过期。',
    ask_again: '请让机器人重新发送：{cmd}',
    gone_title: '链接已失效',
    not_found_title: '链接不存在',
    not_found_body: '请确认打开的是机器人发送的完整链接。',
    loading: '正在准备加密…',
    sealing: '正在加密…',
    sending: '正在发送加密后的密钥…',
    too_many: '尝试次数过多，请等一分钟后再试。',
    used_now: '此链接已被使用或已过期。请让机器人重新发送。',
    still_checking: '仍在验证中。结果也会发送到聊天中，你可以关闭此页面。',
    what_to_do: '建议：',
    no_js: '此表单需要 JavaScript：密钥会在离开此页面之前在浏览器中加密。',
    crypto_failed: '此浏览器无法启动加密，请换一个浏览器。',
    expires_in: '{min} 分钟后失效',
    expired_now: '此链接已过期。请让机器人重新发送。',
    forbidden: '此链接必须从发起请求的聊天中打开。',
    bad_request: '表单无法提交：{msg}',
    homepage_note: '在那里创建或复制密钥，然后粘贴到这里——切勿发到聊天中。',
    error_generic: '服务器出错了，请稍后再试。',
    busy: '服务繁忙，请稍后刷新本页：你的链接仍然有效。',
    choice_legend: '你想使用哪种凭证？',
    kind_aws_keypair: 'IAM 访问密钥对',
    kind_bedrock_key: 'Bedrock API 密钥（ABSK…）',
    kind_bearer: 'Bearer 令牌',
    kind_api_key: 'API 密钥',
    kind_oauth_json: '凭证文件',
    file_label: '{env} 的凭证文件（JSON）',
    file_hint: '在你登录该 CLI 的电脑上打开 {path}，把全部内容粘贴到这里。最大 16 KiB。',
    file_hint_generic: '把 CLI 写入的凭证文件的全部内容粘贴到这里。最大 16 KiB。',
    file_too_big: '凭证文件超过 {kib} KiB。请只粘贴 CLI 写入的那个 JSON 文件。',
    project_label: 'Google Cloud 项目 ID（可选）',
    project_hint: '仅当你的账号需要时填写（Workspace 账号或付费版 Gemini Code Assist）。此项不是机密。',
    bad_project: '这不是有效的 Google Cloud 项目 ID：需为 6–30 个小写字母、数字或连字符，并以字母开头。',
    keep_label: '密钥保留时间',
    keep_label_file: '登录凭证保留时间',
    keep_1: '1 天',
    keep_7: '7 天',
    keep_30: '30 天',
    keep_never: '永不过期',
    keep_hint: '到期后密钥会被删除，机器人会请你重新提供。',
    keep_hint_file: '到期后保存的登录凭证会被删除，机器人会请你重新提供凭证文件。',
  },
};

// Inline SVG (no emoji font needed; presentation attributes are not inline styles for the CSP).
const ICON_LOCK =
  '<svg width="40" height="40" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round" stroke-linejoin="round">' +
  '<rect x="4" y="10.5" width="16" height="10.5" rx="2.2"/><path d="M8 10.5V7.5a4 4 0 0 1 8 0v3"/><circle cx="12" cy="15.5" r="1.3"/></svg>';
const ICON_CLOCK =
  '<svg width="40" height="40" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round" stroke-linejoin="round">' +
  '<circle cx="12" cy="12" r="9"/><path d="M12 7v5l3 2"/></svg>';

function x(lang: Lang, key: string, params: Record<string, string | number> = {}): string {
  const text = EXTRA[lang][key] ?? EXTRA.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (m, name: string) => (name in params ? String(params[name]) : m));
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"'`]/g, (c) => `&#${c.charCodeAt(0)};`);
}

function safeHttpUrl(u: string): string | undefined {
  try {
    const url = new URL(u);
    return url.protocol === 'https:' || url.protocol === 'http:' ? url.href : undefined;
  } catch {
    return undefined;
  }
}

function shell(lang: Lang, title: string, body: string, bodyAttrs = ''): string {
  return `<!doctype html>
<html lang="${lang === 'zh' ? 'zh-CN' : 'en'}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<meta name="robots" content="noindex, nofollow">
<title>${escapeHtml(title)}</title>
<link rel="stylesheet" href="/assets/form.css">
<link rel="icon" href="/favicon.ico">
</head>
<body${bodyAttrs}>
<main class="card">
${body}
</main>
</body>
</html>
`;
}

/** The messages form.js needs, in the page's language. */
function clientMessages(lang: Lang, isFile: boolean): Record<string, string> {
  return {
    pending: t(lang, isFile ? 'form.pending_file' : 'form.pending'),
    ok: t(lang, isFile ? 'form.ok_file' : 'form.ok'),
    error: t(lang, 'form.error'),
    reload: t(lang, 'form.reload'),
    empty: t(lang, 'form.empty'),
    network: t(lang, 'form.network'),
    loading: x(lang, 'loading'),
    sealing: x(lang, 'sealing'),
    sending: x(lang, 'sending'),
    too_many: x(lang, 'too_many'),
    gone: x(lang, 'used_now'),
    still_checking: x(lang, 'still_checking'),
    what_to_do: x(lang, 'what_to_do'),
    crypto_failed: x(lang, 'crypto_failed'),
    expires_in: x(lang, 'expires_in'),
    expired_now: x(lang, 'expired_now'),
    forbidden: x(lang, 'forbidden'),
    bad_request: x(lang, 'bad_request'),
    error_generic: x(lang, 'error_generic'),
    retry: t(lang, 'form.retry'),
    file_too_big: x(lang, 'file_too_big', { kib: MAX_FILE_BYTES / 1024 }),
    bad_project: x(lang, 'bad_project'),
  };
}

/** Where each CLI keeps the file (the hint under the textarea). */
const OAUTH_FILE_PATHS: Record<string, string> = {
  'qwen-code': '~/.qwen/oauth_creds.json',
  'gemini-cli': '~/.gemini/oauth_creds.json',
  'claude-code': '~/.claude/.credentials.json (macOS: Keychain item "Claude Code-credentials")',
};

function kindLabel(lang: Lang, o: CredentialOption): string {
  if (o.kind === 'bearer' && o.env_vars[0] === 'AWS_BEARER_TOKEN_BEDROCK') return x(lang, 'kind_bedrock_key');
  return x(lang, `kind_${o.kind}`);
}

const SECRET_ATTRS = 'autocomplete="off" autocapitalize="off" autocorrect="off" spellcheck="false"';

/** The secret inputs of one credential option; ids k0, k1… run across options. */
function optionFields(lang: Lang, o: CredentialOption, form: CredentialForm, firstId: number): string {
  return o.env_vars
    .map((env, i) => {
      const id = `k${firstId + i}`;
      if (o.kind === 'oauth_json') {
        const path = form.oauth_provider ? OAUTH_FILE_PATHS[form.oauth_provider] : undefined;
        const hint = path ? x(lang, 'file_hint', { path }) : x(lang, 'file_hint_generic');
        // No maxlength: the browser would cut a long paste silently; form.js refuses it with a message.
        return `<div class="field">
<label for="${id}">${escapeHtml(x(lang, 'file_label', { env }))}</label>
<textarea id="${id}" data-env="${escapeHtml(env)}" ${SECRET_ATTRS} required data-max-bytes="${MAX_FILE_BYTES}" rows="8" placeholder="{&quot;access_token&quot;: …, &quot;refresh_token&quot;: …}" aria-describedby="${id}-hint"></textarea>
<p id="${id}-hint" class="hint muted">${escapeHtml(hint)}</p>
</div>`;
      }
      return `<div class="field">
<label for="${id}">${escapeHtml(x(lang, 'key_label', { env }))}</label>
<input id="${id}" type="password" data-env="${escapeHtml(env)}" ${SECRET_ATTRS} required maxlength="${MAX_KEY_BYTES}" data-max-bytes="${MAX_KEY_BYTES}" placeholder="${escapeHtml(env)}">
</div>`;
    })
    .join('\n');
}

/** The credential inputs: one option as is, or a choice of two showing one set at a time. */
function credentialFields(lang: Lang, form: CredentialForm): string {
  if (form.options.length === 1) return optionFields(lang, form.options[0]!, form, 0);
  let next = 0;
  const radios: string[] = [];
  const groups: string[] = [];
  form.options.forEach((o, i) => {
    // No name, like every input here (form.js keeps the two exclusive).
    radios.push(
      `<label class="opt"><input type="radio" id="cred-${i}" data-choice value="${i}"${i === 0 ? ' checked' : ''}> ${escapeHtml(kindLabel(lang, o))}</label>`,
    );
    groups.push(`<div class="cred" data-option="${i}"${i === 0 ? '' : ' hidden'}>\n${optionFields(lang, o, form, next)}\n</div>`);
    next += o.env_vars.length;
  });
  return `<fieldset class="choice" role="radiogroup">
<legend>${escapeHtml(x(lang, 'choice_legend'))}</legend>
${radios.join('\n')}
</fieldset>
${groups.join('\n')}`;
}

/** Non-secret extras: the Gemini CLI project id, the key's lifetime. */
function extraFields(lang: Lang, form: CredentialForm): string {
  const project = form.project_id
    ? `<div class="field">
<label for="project">${escapeHtml(x(lang, 'project_label'))}</label>
<input id="project" type="text" autocomplete="off" autocapitalize="off" spellcheck="false" maxlength="30" placeholder="my-project-123456" aria-describedby="project-hint">
<p id="project-hint" class="hint muted">${escapeHtml(x(lang, 'project_hint'))}</p>
</div>
`
    : '';
  // A credentials file is a login (the CLI's), not a key: say so where the user keeps it.
  const file = form.options[0]?.kind === 'oauth_json' ? '_file' : '';
  const days = ['1', '7', '30'].map((d) => `<option value="${d}">${escapeHtml(x(lang, `keep_${d}`))}</option>`).join('');
  return `${project}<div class="field">
<label for="keep">${escapeHtml(x(lang, `keep_label${file}`))}</label>
<select id="keep" aria-describedby="keep-hint">${days}<option value="never" selected>${escapeHtml(x(lang, 'keep_never'))}</option></select>
<p id="keep-hint" class="hint muted">${escapeHtml(x(lang, `keep_hint${file}`))}</p>
</div>`;
}

export interface FormPageInput {
  record: EnvInputRecord;
  /** What to ask for (credential-form.ts); by default one key per `record.env_vars`. */
  form?: CredentialForm;
  lang: Lang;
  /** The box public key, standard base64. */
  publicKeyB64: string;
  keyId: string;
}

export function renderFormPage({ record, form, lang, publicKeyB64, keyId }: FormPageInput): string {
  // The browser replaces it with its local time (form.js); without script: the language's zone.
  const expiresText = formatTime(record.expires_at, lang);
  const home = safeHttpUrl(record.homepage);
  const spec: CredentialForm = form ?? { options: [{ kind: 'api_key', env_vars: record.env_vars }], project_id: false };
  const fields = `${credentialFields(lang, spec)}\n${extraFields(lang, spec)}`;
  const isFile = spec.options[0]?.kind === 'oauth_json';
  const body = `<header>
<div class="lock" aria-hidden="true">${ICON_LOCK}</div>
<h1>${escapeHtml(x(lang, isFile ? 'heading_file' : 'heading', { vendor: record.vendor_name }))}</h1>
<p class="lead">${escapeHtml(x(lang, 'lead', { model: record.model_name }))}</p>
</header>
<dl class="facts">
<dt>${escapeHtml(t(lang, 'form.vendor'))}</dt><dd>${escapeHtml(record.vendor_name)}</dd>
<dt>${escapeHtml(t(lang, 'form.model'))}</dt><dd><code>${escapeHtml(record.model_name)}</code> <span class="muted">(custom/${escapeHtml(record.model_id)})</span></dd>
${record.reason ? `<dt>${escapeHtml(t(lang, 'form.reason'))}</dt><dd>${escapeHtml(record.reason)}</dd>` : ''}
</dl>
${
  // A credentials file comes from the CLI's login (the hint under the box says where), not a key page.
  home && !isFile
    ? `<p class="home"><a href="${escapeHtml(home)}" target="_blank" rel="noopener noreferrer">${escapeHtml(t(lang, 'form.get_key', { vendor: record.vendor_name }))} ↗</a><br><span class="muted">${escapeHtml(x(lang, 'homepage_note'))}</span></p>`
    : ''
}
<noscript><p class="status error">${escapeHtml(x(lang, 'no_js'))}</p></noscript>
<form id="keyform" autocomplete="off" novalidate>
${fields}
<button id="submit" type="submit" disabled>${escapeHtml(t(lang, 'form.submit'))}</button>
</form>
<div id="status" class="status" role="status" aria-live="polite"></div>
<p class="note">${escapeHtml(t(lang, 'form.sealed_note'))}</p>
<p class="expiry"><span id="expiry">${escapeHtml(t(lang, 'form.expires', { time: expiresText }))}</span> <span id="countdown" class="muted"></span></p>
<script src="/assets/libsodium.js"></script>
<script src="/assets/sodium.js"></script>
<script src="/assets/form.js"></script>`;
  const attrs =
    ` data-public-key="${escapeHtml(publicKeyB64)}"` +
    ` data-key-id="${escapeHtml(keyId)}"` +
    ` data-expires-at="${escapeHtml(record.expires_at)}"` +
    ` data-lang="${lang}"` +
    ` data-messages="${escapeHtml(JSON.stringify(clientMessages(lang, isFile)))}"`;
  return shell(lang, `${t(lang, isFile ? 'form.title_file' : 'form.title')} · ${record.vendor_name}`, body, attrs);
}

/**
 * The form's result in the page's language, by code (the status keeps the codes and the
 * worker's English): `text` replaces the English message on a non-English page (English
 * pages keep the vendor's own words), `todo_text` is the what-to-do hint, never a raw code.
 */
export function statusTexts(
  lang: Lang,
  status: { status: string; code?: string; what_to_do?: string; kept_previous?: boolean; detail?: { key: string; params?: Record<string, string> }; model_id?: string },
): { text?: string; todo_text?: string } {
  if (status.status !== 'error') return {};
  const out: { text?: string; todo_text?: string } = {};
  const cat = catalogue(lang) as Record<string, string>;
  const code = status.code ?? '';
  const detail = status.detail && Object.hasOwn(cat, status.detail.key) ? t(lang, status.detail.key as MessageKey, status.detail.params) : undefined;
  if (code === 'form_error' && detail) {
    // What was wrong with the form (a Gemini file pasted for Qwen, a missing field), in the
    // page's language: the worker's message is in the requester's, maybe not the page's.
    const base = `${t(lang, 'err.form_error')} ${detail}`;
    out.text = status.kept_previous ? `${base} ${t(lang, 'err.kept_previous')}` : base;
  } else if (lang !== 'en') {
    const key = `err.${code}`;
    const base = Object.hasOwn(cat, key) ? t(lang, key as MessageKey) : t(lang, 'form.error');
    out.text = status.kept_previous ? `${base} ${t(lang, 'err.kept_previous')}` : base;
  }
  const todo = status.what_to_do;
  if (todo && todo !== 'none') {
    const key = `todo.${todo}`;
    if (todo === 'open_new_form' && status.model_id) out.todo_text = t(lang, 'todo.open_new_form_id', { id: status.model_id });
    else if (Object.hasOwn(cat, key)) out.todo_text = t(lang, key as MessageKey);
    // Free text from an older worker: shown as it is on an English page only.
    else if (lang === 'en' && !/^[a-z_]+$/.test(todo)) out.todo_text = todo;
  }
  return out;
}

export function renderGonePage(lang: Lang, reason: Exclude<DeadReason, 'not_found'>, modelId?: string): string {
  const msg = reason === 'voided' ? x(lang, 'voided') : reason === 'already_used' ? x(lang, 'used') : x(lang, 'expired');
  const cmd = modelId ? `/byok key ${modelId}` : '/byok key <id>';
  const body = `<header>
<div class="lock" aria-hidden="true">${ICON_CLOCK}</div>
<h1>${escapeHtml(x(lang, 'gone_title'))}</h1>
</header>
<p>${escapeHtml(msg)}</p>
${reason === 'already_used' ? '' : `<p>${escapeHtml(x(lang, 'ask_again', { cmd: '' }))}<code>${escapeHtml(cmd)}</code></p>`}`;
  return shell(lang, x(lang, 'gone_title'), body);
}

export function renderNotFoundPage(lang: Lang): string {
  const body = `<header>
<div class="lock" aria-hidden="true">${ICON_CLOCK}</div>
<h1>${escapeHtml(x(lang, 'not_found_title'))}</h1>
</header>
<p>${escapeHtml(t(lang, 'form.not_found'))} ${escapeHtml(x(lang, 'not_found_body'))}</p>`;
  return shell(lang, x(lang, 'not_found_title'), body);
}

export function renderErrorPage(lang: Lang, status: number): string {
  const text = status === 429 ? x(lang, 'too_many') : status === 403 ? x(lang, 'forbidden') : status === 503 ? x(lang, 'busy') : x(lang, 'error_generic');
  return shell(lang, String(status), `<h1>${status}</h1><p>${escapeHtml(text)}</p>`);
}

export const FORM_CSS = `:root {
  color-scheme: light dark;
  --bg: #f4f5f7; --card: #ffffff; --fg: #1d2330; --muted: #667085; --line: #d9dde3;
  --accent: #2563eb; --accent-fg: #ffffff; --ok: #157347; --ok-bg: #e8f5ee; --err: #b42318; --err-bg: #fdecea;
  --pending-bg: #eef3fe;
}
@media (prefers-color-scheme: dark) {
  :root { --bg: #0f1115; --card: #181b22; --fg: #e6e8ec; --muted: #9aa3b2; --line: #2b303b;
    --accent: #4f83ff; --ok: #5cc98b; --ok-bg: #12271c; --err: #ff7b72; --err-bg: #2d1414; --pending-bg: #162033; }
}
* { box-sizing: border-box; }
html, body { margin: 0; padding: 0; }
body { background: var(--bg); color: var(--fg);
  font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "PingFang SC", "Microsoft YaHei", "Noto Sans CJK SC", sans-serif;
  min-height: 100vh; display: flex; align-items: flex-start; justify-content: center; padding: 32px 16px; }
.card { background: var(--card); width: 100%; max-width: 480px; border: 1px solid var(--line); border-radius: 14px;
  padding: 28px 28px 20px; box-shadow: 0 6px 24px rgba(16, 24, 40, .08); }
header { text-align: center; margin-bottom: 18px; }
.lock { line-height: 0; color: var(--accent); }
h1 { font-size: 22px; margin: 10px 0 4px; }
.lead { margin: 0; color: var(--muted); }
.facts { display: grid; grid-template-columns: max-content 1fr; gap: 6px 14px; margin: 0 0 16px;
  padding: 12px 14px; border: 1px solid var(--line); border-radius: 10px; }
.facts dt { color: var(--muted); }
.facts dd { margin: 0; overflow-wrap: anywhere; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .92em; }
.muted { color: var(--muted); font-size: .9em; }
.home { margin: 0 0 18px; }
a { color: var(--accent); }
.field { margin-bottom: 14px; }
label { display: block; font-weight: 600; margin-bottom: 6px; font-size: .95em; }
input[type=password], input[type=text], textarea, select { width: 100%; padding: 11px 12px; font: inherit;
  color: var(--fg); background: var(--card); border: 1px solid var(--line); border-radius: 8px; }
input[type=password], input[type=text], textarea { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
textarea { resize: vertical; min-height: 9em; font-size: .85em; }
input[type=password]:focus, input[type=text]:focus, textarea:focus, select:focus { outline: 2px solid var(--accent); outline-offset: 1px; border-color: var(--accent); }
.hint { margin: 4px 0 0; }
fieldset.choice { border: 1px solid var(--line); border-radius: 10px; margin: 0 0 14px; padding: 8px 14px 10px; }
fieldset.choice legend { font-weight: 600; font-size: .95em; padding: 0 4px; }
label.opt { display: flex; gap: 8px; align-items: center; font-weight: 400; margin: 6px 0 0; cursor: pointer; }
[hidden] { display: none !important; }
button { width: 100%; padding: 12px; font: inherit; font-weight: 600; color: var(--accent-fg); background: var(--accent);
  border: 0; border-radius: 8px; cursor: pointer; }
button:disabled { opacity: .55; cursor: not-allowed; }
.status { margin: 14px 0 0; padding: 0; border-radius: 8px; }
.status:empty { display: none; }
.status.pending, .status.ok, .status.error, .status.info { padding: 10px 12px; }
.status.pending, .status.info { background: var(--pending-bg); }
.status.ok { background: var(--ok-bg); color: var(--ok); }
.status.error { background: var(--err-bg); color: var(--err); }
.status .todo { display: block; margin-top: 4px; color: var(--fg); }
.note { font-size: .88em; color: var(--muted); margin: 16px 0 4px; }
.expiry { font-size: .88em; color: var(--muted); margin: 0; }
form.done { display: none; }
`;
