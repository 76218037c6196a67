/**
 * `byok`: the registry's exports on the command line.
 *
 *   byok <command> [args] [--workspace W]      (workspace defaults to `local`)
 *
 * Output: one JSON document on stdout, always, including usage errors (so scripts read one
 * stream): `{ "ok": true, ... }` or `{ "ok": false, "error": "...", "code": "..." }`.
 * Exit codes: 0 ok:true, 1 ok:false (the call was refused or failed), 2 usage error
 * (`{ "ok": false, "code": "usage", "error": "...", "usage": "..." }` on stdout).
 * `guard` is the exception: it streams JSON lines (see secrets/guard-cli.ts); and `templates`
 * prints a short table when stdout is a terminal (JSON when piped, or with --json).
 * A command still running after a few seconds says so on stderr ("checking Qwen… still
 * waiting (10 s)"), never on stdout.
 * The data dir comes from BYOK_DATA_DIR (default ./data).
 *
 * Adding a command: add an entry to `commands` (or call `registerCommand`) with its options,
 * positional arity and `run(ctx)`, which returns a result object (printed; exit 0/1 from `ok`)
 * or a number (the command printed its own output; that is the exit code).
 */
import { realpathSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { pathToFileURL } from 'node:url';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { loadConfig, type Config } from './config.ts';
import { ByokError } from './errors.ts';
// Only types at the top: the registry, the store and the command modules are imported when a
// command runs, so `byok templates` does not load ioredis, libsodium, bullmq or pino.
import type { AddArgs, KeySource, Registry, TemplateSummary } from './registry/index.ts';
import { DeferredStore } from './cli/deferred-store.ts';
import { settingChanges, UPDATE_SETTING_OPTIONS, UPDATE_SETTING_USAGE } from './cli/update.ts';
import type { Store } from './store/types.ts';
import { UsageError } from './cli/usage-error.ts';

export interface CliIO {
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
  /** isTTY: a person is reading (some commands then print a table instead of JSON). */
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
}

type OptionsConfig = NonNullable<ParseArgsConfig['options']>;
type Values = Record<string, string | boolean | undefined>;

export interface CommandContext {
  /** Positional arguments after the command name. */
  args: string[];
  /** Parsed option values (strings or booleans), global ones included. */
  values: Values;
  workspace: string;
  io: CliIO;
  config(): Config;
  store(): Store;
  registry(): Registry;
  /** Names what the command is waiting on, for the progress lines on stderr (`checking Qwen`). */
  progress(label: string): void;
}

export interface CommandSpec {
  summary: string;
  /** e.g. `get <id>`; printed in help and usage errors. */
  usage: string;
  options?: OptionsConfig;
  /** Positional arity (default 0..0). */
  positionals?: { min: number; max: number };
  /** Required string options. */
  required?: string[];
  /** false: no "still waiting" lines (a command that streams its own output, or waits on the user). */
  progress?: false;
  /** A placeholder: the real spec is in a module imported on use (see COMMAND_MODULES). */
  load?: () => Promise<Record<string, CommandSpec>>;
  run(ctx: CommandContext): Promise<object | number>;
}

export interface CliDeps {
  /** Builds the registry; the vault-backed KeySource is wired in here later. */
  makeRegistry?: (store: Store, config: Config, env: NodeJS.ProcessEnv) => Registry;
  makeStore?: (config: Config) => Store;
  /** How often a slow command says it is still waiting (default PROGRESS_EVERY_MS). */
  progressEveryMs?: number;
}

/** A command silent this long prints "… still waiting (N s)" on stderr, and again as often. */
export const PROGRESS_EVERY_MS = 5000;

/**
 * Progress lines for a slow command, on stderr only: stdout stays one JSON document.
 * Returns the stop function.
 */
function startProgress(stderr: NodeJS.WritableStream, everyMs: number, label: () => string): () => void {
  const started = Date.now();
  const timer = setInterval(() => {
    const secs = Math.round((Date.now() - started) / 1000);
    stderr.write(`${label()}… still waiting (${secs} s)\n`);
  }, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}

// Its own module: the command modules (cli/keys, cli/update…) throw it without importing cli.ts back.
export { UsageError };

const GLOBAL_OPTIONS: OptionsConfig = {
  workspace: { type: 'string', short: 'w' },
  help: { type: 'boolean', short: 'h' },
};

const MAX_STDIN_BYTES = 4 * 1024 * 1024;

function str(v: string | boolean | undefined): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

/** `--max-tokens 4096` → 4096; anything else is handed to the registry, which explains the rule. */
function intOpt(v: string | boolean | undefined): number | undefined {
  const s = str(v);
  if (s === undefined) return undefined;
  return /^\d{1,15}$/.test(s.trim()) ? Number(s.trim()) : Number.NaN;
}

async function readStdin(stdin: NodeJS.ReadableStream, max: number): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stdin) {
    const b = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    total += b.length;
    if (total > max) return undefined;
    chunks.push(b);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** `--draft -` (stdin) or `--draft FILE`: the draft's JSON text. */
async function readDraft(ctx: CommandContext, from: string): Promise<string> {
  const tooLarge = `the draft is larger than ${MAX_STDIN_BYTES / 1024 / 1024} MB`;
  if (from === '-') {
    if (ctx.io.stdin.isTTY) throw new UsageError('pipe the draft on stdin, e.g. byok parse-example < example.sh | byok add --draft -');
    const text = await readStdin(ctx.io.stdin, MAX_STDIN_BYTES);
    if (text === undefined) throw new UsageError(tooLarge);
    return text;
  }
  let size: number;
  try {
    size = (await stat(from)).size;
  } catch {
    throw new UsageError(`cannot read the draft file ${JSON.stringify(from.slice(0, 200))}`);
  }
  if (size > MAX_STDIN_BYTES) throw new UsageError(tooLarge);
  return readFile(from, 'utf8');
}

/**
 * `byok templates`: the full JSON (tens of KB) is for scripts, so it is what a pipe gets, and
 * what --json forces; a person at a terminal gets a short table.
 */
export function templatesFormat(stdoutIsTTY: boolean, forceJson: boolean): 'table' | 'json' {
  return forceJson || !stdoutIsTTY ? 'json' : 'table';
}

/** One line per template: id, name, wire, credential kind; then where the details are. */
export function templatesTable(templates: Array<Pick<TemplateSummary, 'id' | 'name' | 'wire' | 'credential_kind'>>): string {
  const head = ['ID', 'NAME', 'WIRE', 'CREDENTIAL'];
  const rows = templates.map((t) => [t.id, t.name, t.wire, t.credential_kind]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
  return [
    line(head),
    ...rows.map(line),
    '',
    `${templates.length} templates. Register one: byok add-template <id>. Details: byok templates --json.`,
    '',
  ].join('\n');
}

export const commands: Record<string, CommandSpec> = {
  templates: {
    summary: 'List the curated vendor templates (a short table on a terminal, JSON when piped or with --json)',
    usage: 'templates [--json]',
    options: { json: { type: 'boolean' } },
    run: async (ctx) => {
      const res = ctx.registry().templates();
      if (!res.ok || templatesFormat(ctx.io.stdout.isTTY === true, ctx.values.json === true) === 'json') return res;
      ctx.io.stdout.write(templatesTable(res.templates));
      return 0;
    },
  },
  'vendor-models': {
    summary: "List a vendor's models (live /models with the stored key when the vendor supports it, else the curated list)",
    usage: 'vendor-models <vendor> [--base-url URL]',
    positionals: { min: 1, max: 1 },
    options: { 'base-url': { type: 'string' } },
    run: async (ctx) => {
      ctx.progress(`asking ${ctx.args[0]!.slice(0, 40)} for its models`);
      return ctx.registry().list_vendor_models(ctx.workspace, ctx.args[0]!, { base_url: str(ctx.values['base-url']) });
    },
  },
  'add-template': {
    summary: 'Register a model of a curated vendor (answers need_env_input when the key is not stored yet)',
    usage: 'add-template <vendor> [--model M] [--name N] [--base-url U] [--max-tokens N] [--id ID] [--token-url U]',
    positionals: { min: 1, max: 1 },
    options: {
      model: { type: 'string' },
      name: { type: 'string' },
      'base-url': { type: 'string' },
      'max-tokens': { type: 'string' },
      id: { type: 'string' },
      'token-url': { type: 'string' },
    },
    run: async (ctx) =>
      ctx.registry().add_template(ctx.workspace, ctx.args[0]!, {
        upstream_model: str(ctx.values.model),
        name: str(ctx.values.name),
        base_url: str(ctx.values['base-url']),
        max_tokens: intOpt(ctx.values['max-tokens']),
        id: str(ctx.values.id),
        token_url: str(ctx.values['token-url']),
      }),
  },
  'parse-example': {
    summary: "Turn a vendor's API example (curl / Python / JavaScript, on stdin) into a draft for add",
    usage: 'parse-example < example.txt',
    run: async (ctx) => {
      if (ctx.io.stdin.isTTY) throw new UsageError('pipe the API example on stdin, e.g. byok parse-example < example.sh', 'parse-example < example.txt');
      const text = await readStdin(ctx.io.stdin, MAX_STDIN_BYTES);
      if (text === undefined) return { ok: false, code: 'too_large', error: `the example is larger than ${MAX_STDIN_BYTES / 1024 / 1024} MB; paste only the request example` };
      return ctx.registry().parse_example(text);
    },
  },
  add: {
    summary: 'Register any endpoint: from parse-example\'s draft (--draft - reads it from stdin), or from the fields given',
    usage:
      'add --draft -|FILE | --model M --base-url URL [--wire openai|anthropic|azure-openai] [--name N] [--env-var V] [--max-tokens N] [--key-optional] [--id ID]   (e.g. byok parse-example < ex.sh | byok add --draft -; flags override the draft)',
    options: {
      draft: { type: 'string' },
      model: { type: 'string' },
      'base-url': { type: 'string' },
      wire: { type: 'string' },
      name: { type: 'string' },
      'env-var': { type: 'string' },
      'max-tokens': { type: 'string' },
      'key-optional': { type: 'boolean' },
      id: { type: 'string' },
    },
    run: async (ctx) => {
      const draftPath = str(ctx.values.draft);
      let base: AddArgs | undefined;
      if (draftPath !== undefined) {
        const text = await readDraft(ctx, draftPath);
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          return { ok: false, code: 'invalid_input', error: 'the draft is not JSON: pipe the output of byok parse-example, or give a JSON file' };
        }
        const res = (await import('./registry/index.ts')).addArgsFromDraft(json);
        if (!res.ok) return res;
        base = res.args;
      } else {
        for (const r of ['model', 'base-url']) if (!str(ctx.values[r])) throw new UsageError(`--${r} is required (or --draft)`);
      }
      const flags = Object.fromEntries(
        Object.entries({
          upstream_model: str(ctx.values.model),
          base_url: str(ctx.values['base-url']),
          wire: str(ctx.values.wire) as 'openai' | undefined,
          name: str(ctx.values.name),
          api_key_env: str(ctx.values['env-var']),
          max_tokens: intOpt(ctx.values['max-tokens']),
          key_optional: ctx.values['key-optional'] === true ? true : undefined,
          id: str(ctx.values.id),
        }).filter(([, v]) => v !== undefined),
      );
      return ctx.registry().add(ctx.workspace, { ...base, ...flags } as AddArgs);
    },
  },
  list: {
    summary: 'List the custom models of the workspace',
    usage: 'list [--include-removed]',
    options: { 'include-removed': { type: 'boolean' } },
    // Each model also gets `key`: names, stored, masked ****last4, kind, health, validated/expires at.
    run: async (ctx) => (await import('./cli/keys.ts')).withKeyFields(ctx, await ctx.registry().list_models(ctx.workspace, { include_removed: ctx.values['include-removed'] === true })),
  },
  get: {
    summary: 'Show one model (id or custom/<id>)',
    usage: 'get <id>',
    positionals: { min: 1, max: 1 },
    run: async (ctx) => (await import('./cli/keys.ts')).withKeyFields(ctx, await ctx.registry().get(ctx.workspace, ctx.args[0]!)),
  },
  remove: {
    summary: 'Deactivate a model (adding the same id/name again with the same vendor reactivates it)',
    usage: 'remove <id>',
    positionals: { min: 1, max: 1 },
    run: async (ctx) => {
      const res = await ctx.registry().remove(ctx.workspace, ctx.args[0]!);
      // Its pending key forms go with it (see EnvInputRequests.voidForModel).
      if (res.ok) {
        const { EnvInputRequests } = await import('./secure-input/tokens.ts');
        const config = ctx.config();
        await new EnvInputRequests(ctx.store(), { ttlMs: config.tokenTtlMs, publicUrl: config.publicUrl }).voidForModel(ctx.workspace, res.model.id);
      }
      return res;
    },
  },
  update: {
    summary: 'Change display name, upstream model, base URL, max tokens, capability flags, pricing or the reasoning parameter',
    usage: `update <id> [--name N] [--model M] [--base-url URL] [--max-tokens N] ${UPDATE_SETTING_USAGE}`,
    positionals: { min: 1, max: 1 },
    options: {
      name: { type: 'string' },
      model: { type: 'string' },
      'base-url': { type: 'string' },
      'max-tokens': { type: 'string' },
      ...UPDATE_SETTING_OPTIONS,
    },
    run: async (ctx) => {
      const changes = Object.fromEntries(
        Object.entries({
          name: str(ctx.values.name),
          upstream_model: str(ctx.values.model),
          base_url: str(ctx.values['base-url']),
          max_tokens: intOpt(ctx.values['max-tokens']),
        }).filter(([, v]) => v !== undefined),
      );
      const settings = settingChanges(ctx.values);
      if (!settings.ok) throw new UsageError(settings.error);
      Object.assign(changes, settings.changes);
      if (!Object.keys(changes).length) {
        throw new UsageError('nothing to update: give at least one of --name, --model, --base-url, --max-tokens, --vision/--tools/--json/--reasoning, --price-in/--price-out, --no-price, --reasoning-param');
      }
      return ctx.registry().update(ctx.workspace, ctx.args[0]!, changes);
    },
  },
  usage: {
    summary: 'Tokens and cost per model (or --by provider) over a period: --since today|7d|30d|all (default all; today is UTC)',
    usage: 'usage [--since today|7d|30d|all] [--by model|provider]',
    options: { since: { type: 'string' }, by: { type: 'string' } },
    run: async (ctx) => {
      const { usageReport } = await import('./chat/commands/usage.ts');
      const since = str(ctx.values.since) ?? 'all';
      const by = str(ctx.values.by) ?? 'model';
      const r = await usageReport(ctx.store(), ctx.registry(), ctx.workspace, since, by);
      if (!r) throw new UsageError('--since takes today, all or <n>d (e.g. 7d); --by takes model or provider');
      return r;
    },
  },
  guard: {
    summary: 'Test the pasted-key detector: JSON strings in (one per line), {"refused","kinds"} lines out',
    usage: 'guard < lines.jsonl',
    progress: false,
    run: async (ctx) => {
      const { runGuard } = await import('./secrets/guard-cli.ts');
      return runGuard(ctx.io.stdin, ctx.io.stdout);
    },
  },
  help: {
    summary: 'Show the commands',
    usage: 'help [command]',
    positionals: { min: 0, max: 1 },
    run: async (ctx) => help(ctx.args[0]),
  },
};

/**
 * Commands kept in their own modules, imported when one of them runs (or help lists them).
 * Until then `commands` holds a placeholder with `load`; resolveCommand swaps in the real specs.
 */
const COMMAND_MODULES: Array<{ names: string[]; load: () => Promise<Record<string, CommandSpec>> }> = [
  { names: ['request-key', 'test', 'rotate-master-key'], load: async () => (await import('./cli/secrets.ts')).secretCommands },
  { names: ['keys', 'delete-key', 'forget'], load: async () => (await import('./cli/keys.ts')).keyCommands },
];
for (const m of COMMAND_MODULES) {
  for (const name of m.names) {
    commands[name] = { summary: '', usage: name, load: m.load, run: async () => Promise.reject(new Error(`byok ${name} was not loaded`)) };
  }
}

/** The command's real spec, importing its module first when it has one. */
async function resolveCommand(name: string): Promise<CommandSpec | undefined> {
  const spec = Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (!spec?.load) return spec;
  const loaded = await spec.load();
  if (!Object.hasOwn(loaded, name)) throw new Error(`byok ${name} is not in its command module`);
  Object.assign(commands, loaded);
  return commands[name];
}

export function registerCommand(name: string, spec: CommandSpec): void {
  commands[name] = spec;
}

async function help(command?: string): Promise<Record<string, unknown>> {
  if (command !== undefined) {
    const spec = await resolveCommand(command);
    if (!spec) throw new UsageError(`unknown command "${command.slice(0, 40)}"; run byok help`);
    return { ok: true, command, usage: `byok ${spec.usage} [--workspace W]`, summary: spec.summary };
  }
  await Promise.all(COMMAND_MODULES.map((m) => resolveCommand(m.names[0]!)));
  return {
    ok: true,
    usage: 'byok <command> [args] [--workspace W]',
    commands: Object.entries(commands).map(([name, spec]) => ({ command: name, usage: `byok ${spec.usage}`, summary: spec.summary })),
    notes: [
      'Output is JSON on stdout; exit 0 when ok is true, 1 when ok is false, 2 on a usage error (also JSON on stdout, code "usage").',
      '--workspace: local (default), tg:<user id>, tg:group:<chat id>, wx:<contact id>.',
      'Data dir: BYOK_DATA_DIR (default ./data). Keys are never given here: they are entered through the secure form.',
    ],
  };
}

function writeJson(out: NodeJS.WritableStream, value: unknown): void {
  out.write(JSON.stringify(value, null, 2) + '\n');
}

/** Runs one command; returns the exit code. Never throws. */
export async function main(argv: string[], io: CliIO = defaultIO(), deps: CliDeps = {}): Promise<number> {
  let store: Store | undefined;
  let spec: CommandSpec | undefined;
  try {
    const [name, ...rest] = argv;
    if (name === undefined || name === '--help' || name === '-h') {
      if (name === undefined) throw new UsageError('no command given; run byok help');
      writeJson(io.stdout, await help());
      return 0;
    }
    spec = await resolveCommand(name);
    if (!spec) throw new UsageError(`unknown command "${name.slice(0, 40)}"; run byok help`);
    let parsed: { values: Values; positionals: string[] };
    try {
      parsed = parseArgs({ args: rest, options: { ...GLOBAL_OPTIONS, ...spec.options }, allowPositionals: true, strict: true }) as typeof parsed;
    } catch (e) {
      throw new UsageError((e as Error).message.split('\n')[0]!.replace(/^TypeError \[[A-Z_]+\]: /, ''), spec.usage);
    }
    const { values, positionals } = parsed;
    if (values.help) {
      writeJson(io.stdout, await help(name));
      return 0;
    }
    const arity = spec.positionals ?? { min: 0, max: 0 };
    if (positionals.length < arity.min) throw new UsageError(`missing argument: byok ${spec.usage}`, spec.usage);
    if (positionals.length > arity.max) throw new UsageError(`unexpected argument "${positionals[arity.max]!.slice(0, 40)}"`, spec.usage);
    for (const r of spec.required ?? []) {
      if (typeof values[r] !== 'string' || values[r] === '') throw new UsageError(`--${r} is required`, spec.usage);
    }
    let config: Config | undefined;
    let registry: Registry | undefined;
    let label = `byok ${name}`;
    const getConfig = () => (config ??= loadConfig(io.env));
    const getStore = () => (store ??= deps.makeStore ? deps.makeStore(getConfig()) : new DeferredStore(getConfig()));
    // Nearly every command asks for the registry, and ctx.registry() is synchronous.
    const { createRegistry } = deps.makeRegistry ? { createRegistry: undefined } : await import('./registry/index.ts');
    let vaultKeys: Promise<KeySource> | undefined;
    const openVaultKeys = () => (vaultKeys ??= import('./cli/secrets.ts').then((m) => m.lazyVaultKeys(getStore, getConfig)));
    const keys: KeySource = {
      has: async (ws, env) => (await openVaultKeys()).has(ws, env),
      withKey: async (ws, env, fn) => (await openVaultKeys()).withKey(ws, env, fn),
    };
    const ctx: CommandContext = {
      args: positionals,
      values,
      workspace: str(values.workspace) ?? 'local',
      io,
      config: getConfig,
      store: getStore,
      registry: () =>
        (registry ??= deps.makeRegistry ? deps.makeRegistry(getStore(), getConfig(), io.env) : createRegistry!({ store: getStore(), env: io.env, keys })),
      progress: (l) => {
        label = l;
      },
    };
    const stopProgress = spec.progress === false ? () => undefined : startProgress(io.stderr, deps.progressEveryMs ?? PROGRESS_EVERY_MS, () => label);
    let result: object | number;
    try {
      result = await spec.run(ctx);
    } finally {
      stopProgress();
    }
    if (typeof result === 'number') return result;
    writeJson(io.stdout, result);
    return (result as { ok?: unknown }).ok === true ? 0 : 1;
  } catch (e) {
    if (e instanceof UsageError) {
      const usage = e.usage ?? spec?.usage;
      writeJson(io.stdout, { ok: false, code: 'usage', error: e.message, ...(usage ? { usage: `byok ${usage} [--workspace W]` } : {}) });
      return 2;
    }
    if (e instanceof ByokError) {
      writeJson(io.stdout, { ok: false, code: e.code, error: e.message });
      return 1;
    }
    writeJson(io.stdout, { ok: false, code: 'internal', error: 'internal error' });
    io.stderr.write(`byok: ${(e as Error)?.name ?? 'Error'} (${String((e as Error)?.message ?? '').slice(0, 200).replace(/\S{24,}/g, '…')})\n`);
    return 1;
  } finally {
    await store?.close().catch(() => undefined);
  }
}

export function defaultIO(): CliIO {
  return { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, env: process.env };
}

/** Entry point for `bin/byok.js` and `tsx src/cli.ts`: runs, flushes stdout, exits. */
export async function runCli(argv: string[] = process.argv.slice(2)): Promise<never> {
  const code = await main(argv);
  await new Promise<void>((resolve) => process.stdout.write('', () => resolve()));
  process.exit(code);
}

function invokedDirectly(): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return import.meta.url === pathToFileURL(realpathSync(entry)).href;
  } catch {
    return false;
  }
}

if (invokedDirectly()) void runCli();
