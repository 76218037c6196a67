import type { FastifyInstance } from 'fastify';
import type { ChannelAdapter } from './channel.ts';
import { keepsPreviousKey, validateKeyFinalFailure, validateKeyHandler, type ValidateDeps } from './jobs/validate-key.ts';
import { Notifier } from './chat/notifier.ts';
import { storedTimeZone } from './chat/time.ts';
import { loadPlatformModels, type PlatformModels } from './chat/platform.ts';
import { ChatRouter } from './chat/router.ts';
import type { Config } from './config.ts';
import { createLogger, setLogRedactor, type Logger } from './log.ts';
import { createNotifyQueues, createRunner, type HookedJobRunner, type NotifyQueues } from './queue/index.ts';
import { JOB_NOTIFY, JOB_VALIDATE_KEY, type ChannelRef, type NotifyPayload, type RetryPolicy, type ValidateKeyPayload } from './queue/types.ts';
import { createRegistry, type Registry } from './registry/index.ts';
import { BoxKeys } from './secrets/box-keys.ts';
import { redactKeys } from './secrets/detector.ts';
import { loadCheckedMasterKeys } from './secrets/keyring-check.ts';
import { Vault } from './secrets/vault.ts';
import { buildServer, type RateLimits } from './secure-input/server.ts';
import { submissionFields, Submissions, type Submission } from './secure-input/submissions.ts';
import { probeWithCredentials } from './credentials/index.ts';
import { EnvInputRequests } from './secure-input/tokens.ts';
import { createStore } from './store/index.ts';
import type { Store } from './store/types.ts';
import { configureVendorNet } from './vendors/net.ts';
import type { ProbeResult } from './vendors/types.ts';
import { getWire } from './vendors/wires/index.ts';
import { registerKeyJobs, scheduleKeyJobs, type KeyJobsDeps } from './jobs/key-health.ts';
import { ByokError } from './errors.ts';
import { offeredTemplates } from './vendors/templates.ts';

export interface AppOptions {
  config: Config;
  logger?: Logger;
  /** Consume validate-key jobs in this process (default: yes unless REDIS_URL is set). */
  runWorker?: boolean;
  retry?: RetryPolicy;
  /** Replace the vendor probe (benchmarks that exclude vendor time). */
  probe?: ValidateDeps['probe'];
  /** Secure-form rate limits (benchmarks raise them). */
  rateLimits?: Partial<RateLimits>;
  /**
   * Jobs run at once per process (default: validate-key 32, notify 16). Both kinds wait on
   * the network (a vendor probe takes hundreds of ms, a chat send tens), so a handful at a
   * time would cap a worker at a few validations per second.
   */
  concurrency?: { validate?: number; notify?: number };
}

/** After the channels drained: how long other HTTP requests in flight (form POSTs) may finish. */
const HTTP_CLOSE_GRACE_MS = 5_000;

/**
 * Closes the server without waiting on keep-alive connections: Node closes the idle ones
 * once, but a connection busy at that moment would then idle for Fastify's 72 s
 * keep-alive before the close resolves. Idle connections are closed as they appear; what
 * still runs after `graceMs` is cut.
 */
async function closeHttp(server: FastifyInstance, graceMs: number): Promise<void> {
  const closing = server.close();
  const sweep = setInterval(() => server.server.closeIdleConnections(), 100);
  try {
    const done = await Promise.race([closing.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), graceMs).unref())]);
    if (!done) server.server.closeAllConnections();
    await closing;
  } finally {
    clearInterval(sweep);
  }
}

export const DEFAULT_VALIDATE_CONCURRENCY = Number(process.env.BYOK_VALIDATE_CONCURRENCY) || 32;
export const DEFAULT_NOTIFY_CONCURRENCY = Number(process.env.BYOK_NOTIFY_CONCURRENCY) || 16;

export interface App {
  config: Config;
  logger: Logger;
  store: Store;
  vault: Vault;
  boxKeys: BoxKeys;
  registry: Registry;
  requests: EnvInputRequests;
  submissions: Submissions;
  router: ChatRouter;
  notifier: Notifier;
  platform: PlatformModels;
  server: FastifyInstance;
  validateRunner: HookedJobRunner;
  /** Notices, one queue per channel: this process consumes the queues of its own channels. */
  notifyRunner: NotifyQueues;
  /**
   * Repeating jobs (key-health, key-expiry; src/jobs/key-health.ts) in a queue of their own
   * (`maintenance`): consumed where validations are (in process, or `npm run worker`).
   */
  maintenanceRunner: HookedJobRunner;
  /** What the key jobs run with (tests call runKeyHealth / runExpirySweep with it). */
  keyJobs: KeyJobsDeps;
  /** Schedules the key jobs and consumes them here (app.start does it when it runs the worker). */
  startMaintenance(): Promise<void>;
  channels: ChannelAdapter[];
  /** Adds a channel: it receives messages from start() on and can be notified. */
  addChannel(adapter: ChannelAdapter): void;
  /**
   * Queues the validation of sealed submissions left in the store (job ids are the
   * submissions', so queued ones are not doubled). `unansweredOnly`: only those no job has
   * answered yet (a submission saved while Redis was away), for the workers' periodic sweep.
   */
  requeuePending(opts?: { unansweredOnly?: boolean }): Promise<number>;
  start(): Promise<{ url: string }>;
  stop(): Promise<void>;
}

/**
 * Wires the parts together: store (files or Redis), vault, secure-form server, job runners
 * (in-process or BullMQ), chat router and notifier. Channels are added by the caller.
 */
export async function createApp(opts: AppOptions): Promise<App> {
  const { config } = opts;
  setLogRedactor((s) => redactKeys(s));
  const logger = opts.logger ?? createLogger({ level: config.logLevel });
  configureVendorNet({ allowPrivate: config.allowPrivateBaseUrls, allowlist: config.baseUrlAllowlist });
  // A mistyped BYOK_TEMPLATES / BYOK_TEMPLATES_DISABLED stops the start, not a user later.
  try {
    offeredTemplates();
  } catch (e) {
    throw new ByokError('config', (e as Error).message);
  }

  const store = createStore(config);
  // Refuses (config error) a key that does not match the store's; never generates one beside sealed data or on Redis.
  const ring = await loadCheckedMasterKeys(store, config, { info: (m) => logger.info(m), warn: (m) => logger.warn(m) }).catch(async (e) => {
    await store.close().catch(() => undefined);
    throw e;
  });
  const vault = new Vault(store, ring);
  const boxKeys = new BoxKeys(store, ring);
  const registry = createRegistry({ store, keys: vault });
  const requests = new EnvInputRequests(store, { ttlMs: config.tokenTtlMs, publicUrl: config.publicUrl });
  const submissions = new Submissions(store);
  const platform = loadPlatformModels(config.platformModelsFile);

  const runWorker = opts.runWorker ?? !config.redisUrl;
  const runnerLog = { warn: (o: unknown, m?: string) => logger.warn(o as object, m), error: (o: unknown, m?: string) => logger.error(o as object, m) };
  const validateRunner = await createRunner(config, {
    retry: opts.retry,
    queueName: 'validate',
    logger: runnerLog,
    concurrency: opts.concurrency?.validate ?? DEFAULT_VALIDATE_CONCURRENCY,
  });
  const notifyRunner = await createNotifyQueues(config, {
    retry: opts.retry,
    logger: runnerLog,
    concurrency: opts.concurrency?.notify ?? DEFAULT_NOTIFY_CONCURRENCY,
  });

  const validateDeps: ValidateDeps = { registry, vault, boxKeys, submissions, requests, notifyQueue: notifyRunner, logger, probe: opts.probe, budget: { probeTimeoutMs: config.validateProbeTimeoutMs, totalMs: config.validateBudgetMs } };
  validateRunner.register(JOB_VALIDATE_KEY, validateKeyHandler(validateDeps));
  const onFinal = validateKeyFinalFailure(validateDeps);
  validateRunner.onFinalFailure(async (f) => {
    if (f.name === JOB_VALIDATE_KEY && !f.unrecoverable) await onFinal(f.data as ValidateKeyPayload, f.error);
  });

  // One run at a time per process and no retries: a failed run is the next turn's.
  const maintenanceRunner = await createRunner(config, { retry: { attempts: 1, backoffMs: 0, maxBackoffMs: 0 }, queueName: 'maintenance', logger: runnerLog, concurrency: 1 });
  const stopJobs = new AbortController();
  const keyJobs: KeyJobsDeps = {
    store,
    vault,
    registry,
    notifyQueue: notifyRunner,
    logger,
    intervalMs: config.keyHealthIntervalMs,
    concurrency: config.keyHealthConcurrency,
    probeTimeoutMs: config.validateProbeTimeoutMs,
    probe: opts.probe,
    signal: stopJobs.signal,
  };
  registerKeyJobs(maintenanceRunner, keyJobs);

  const channels: ChannelAdapter[] = [];
  const notifier = new Notifier({ registry, logger, store, tzOf: (ws) => storedTimeZone(store, ws) });
  notifyRunner.register<NotifyPayload>(JOB_NOTIFY, (p, ctx) => notifier.deliver(p, ctx));

  /** The validate-key job of a sealed submission; its job id is the submission's. */
  function enqueueValidation(ws: string, sub: Submission): Promise<string> {
    const payload: ValidateKeyPayload = { workspace: ws, model_id: sub.model_id, submission_id: sub.id, token_hash: sub.token_hash, channel: sub.channel, lang: sub.lang, queued_at: Date.now() };
    return validateRunner.enqueue(JOB_VALIDATE_KEY, payload, { jobId: `validate-${sub.id}` });
  }

  /** "Checking the key" — unless the model works on a stored key: it keeps that status until a new key is proven. */
  async function markValidating(ws: string, modelId: string): Promise<void> {
    if (!(await keepsPreviousKey({ registry, vault }, ws, modelId))) await registry.set_status(ws, modelId, 'validating');
  }

  const router = new ChatRouter({
    store,
    registry,
    vault,
    requests,
    platform,
    logger,
    vendorIdleTimeoutMs: config.vendorIdleTimeoutMs,
    async retest(ws, modelId, _channel: ChannelRef) {
      const sub = await submissions.forModel(ws, modelId);
      if (!sub) return false;
      await submissions.bumpRound(ws, sub.id);
      await markValidating(ws, modelId);
      // Same job id as the submission's own job: a retest while it still runs is a no-op.
      await enqueueValidation(ws, sub);
      return true;
    },
    async probeStored(ws, model): Promise<ProbeResult> {
      // OAuth files: refreshed first when due (one refresh across processes), like the relay.
      const r = await probeWithCredentials({ vault, store }, ws, model, (m, secrets, o) => getWire(m.wire).probe(m, secrets, o));
      return r?.result ?? { outcome: 'invalid_key', message: 'no key stored' };
    },
  });

  const trustHops = config.trustProxyHops;
  const server = buildServer({
    store,
    requests,
    boxKeys,
    logger,
    rateLimits: opts.rateLimits,
    submitDeadlineMs: config.submitDeadlineMs,
    // Number of proxy hops to trust for the client address (per-IP rate limits); never all.
    trustProxy: trustHops > 0 ? (_address: string, hop: number) => hop < trustHops : false,
    async onSubmit(ctx) {
      const { record } = ctx;
      // The sealed boxes plus the form's plain choices (expiry, Gemini project id).
      const sub = await submissions.add(record.workspace, submissionFields(ctx));
      await markValidating(record.workspace, record.model_id);
      // Saved: a failed enqueue (Redis away) must not put the token back; the workers'
      // sweep (requeuePending) queues the submission when Redis is back.
      await enqueueValidation(record.workspace, sub).catch((e) => logger.warn({ err: e, model_id: record.model_id }, 'validate-key not queued yet; the sweep will queue it'));
    },
    async verifyLaunch(record, req) {
      const ch = channels.find((c) => c.name === record.channel.channel);
      if (ch?.verifyFormLaunch) return ch.verifyFormLaunch(record, req);
      // A Mini App form needs its channel's launch check; without the channel, refuse.
      return record.launch !== 'web_app';
    },
  });

  // Readiness, apart from /healthz (liveness): a load balancer stops sending traffic to a
  // process that is starting or draining for shutdown.
  let ready = false;
  let stopping = false;
  // Each channel says whether it can answer now (WeChat logged in, Telegram webhook set or
  // polling): one that cannot (disconnected, reconnecting, waiting for a scan) makes it 503.
  server.get('/readyz', async (_req, reply) => {
    const states = Object.fromEntries(channels.map((c) => [c.name, c.readiness?.() ?? { ready: ready, state: ready ? 'started' : 'starting' }]));
    if (!ready) return reply.code(503).send({ ok: false, state: stopping ? 'stopping' : 'starting', channels: states });
    // Without its store a process can take no update and no form: out of the load balancer.
    if (store.connected && !store.connected()) return reply.code(503).send({ ok: false, state: 'store_unreachable', channels: states });
    const notReady = Object.entries(states).filter(([, s]) => !s.ready).map(([name]) => name);
    if (notReady.length) return reply.code(503).send({ ok: false, state: 'channels_not_ready', not_ready: notReady, channels: states });
    return { ok: true, channels: states };
  });

  /**
   * Sealed submissions still in the store when a worker starts belong to jobs lost in a crash
   * (the in-process runner keeps jobs in memory) or to outages waiting for /byok test: queue
   * them again. The job id is the submission's, so a job still queued is not doubled.
   */
  async function requeuePending(opts: { unansweredOnly?: boolean } = {}): Promise<number> {
    let n = 0;
    for (const ws of await submissions.workspaces()) {
      for (const sub of await submissions.list(ws)) {
        // The periodic sweep leaves answered ones alone (a pending_retry waits for /byok test).
        if (opts.unansweredOnly && (await requests.getStatusByHash(sub.token_hash))?.status !== 'pending') continue;
        await enqueueValidation(ws, sub);
        n++;
      }
    }
    return n;
  }

  let started = false;
  let maintenanceStarted = false;
  let sweeper: NodeJS.Timeout | undefined;
  const app: App = {
    config,
    logger,
    store,
    vault,
    boxKeys,
    registry,
    requests,
    submissions,
    router,
    notifier,
    platform,
    server,
    validateRunner,
    notifyRunner,
    maintenanceRunner,
    keyJobs,
    channels,
    requeuePending,
    async startMaintenance() {
      if (maintenanceStarted) return;
      maintenanceStarted = true;
      await scheduleKeyJobs(maintenanceRunner, config);
      await maintenanceRunner.start();
    },
    addChannel(adapter) {
      if (started) throw new Error('add channels before start()');
      channels.push(adapter);
      notifier.addChannel(adapter);
      adapter.mount?.(server);
    },
    async start() {
      started = true;
      await boxKeys.current(); // create the form key pair before the first request
      const url = await server.listen({ port: config.port, host: config.host });
      if (runWorker) {
        await validateRunner.start();
        await requeuePending();
        await app.startMaintenance();
      }
      if (store.sweepExpired) {
        await store.sweepExpired();
        sweeper = setInterval(() => void store.sweepExpired!().catch((e) => logger.warn({ err: e }, 'sweep of expired values failed')), 60 * 60_000);
        sweeper.unref();
      }
      for (const ch of channels) await notifyRunner.serve(ch.name);
      await notifyRunner.start();
      for (const ch of channels) await ch.start((msg) => router.handle(msg, ch));
      ready = true;
      logger.info({ url, store: store.kind, queue: validateRunner.kind, channels: channels.map((c) => c.name) }, 'byok-bot started');
      return { url };
    },
    async stop() {
      if (stopping) return;
      stopping = true;
      ready = false;
      if (sweeper) clearInterval(sweeper);
      // Channels first, together: each stops taking updates and drains what it is answering
      // (bounded per channel), while the HTTP server still serves forms and answers 503 to
      // new webhook updates so Telegram re-sends them to another process.
      await Promise.all(channels.map((ch) => ch.stop().catch((e) => logger.warn({ err: e }, 'channel stop failed'))));
      logger.info('channels stopped; closing the HTTP server');
      await closeHttp(server, HTTP_CLOSE_GRACE_MS);
      logger.info('HTTP server closed; closing the job queues');
      stopJobs.abort();
      await maintenanceRunner.close();
      await validateRunner.close();
      await notifyRunner.close();
      logger.info('job queues closed');
      await store.close();
      boxKeys.wipe();
    },
  };
  return app;
}
