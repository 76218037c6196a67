import { loadConfig } from '../src/config.ts';
import { createApp } from '../src/app.ts';
import { isByokError } from '../src/errors.ts';

/**
 * `npm run worker`: consumes validate-key jobs from Redis (BullMQ) and queues each result in
 * the notify queue of the submission's channel (`notify-<channel>`), consumed by the bot
 * processes that run that channel. Any number of workers can share one Redis. Workers also
 * run the repeating key jobs (health checks, expiry sweep; see src/jobs/key-health.ts).
 */
async function main(): Promise<void> {
  const config = loadConfig();
  if (!config.redisUrl) {
    process.stderr.write('npm run worker needs REDIS_URL (without it, npm start runs the worker in-process)\n');
    process.exit(2);
  }
  const app = await createApp({ config, runWorker: true });
  await app.boxKeys.current();
  await app.validateRunner.start();
  // key-health and key-expiry: one shared BullMQ job scheduler each; any worker may run a turn.
  await app.startMaintenance();
  // Submissions whose job was lost (a crash) or never queued (Redis away during the form
  // POST): at start all of them, then every config.sweepMs those no job has answered yet.
  await app.requeuePending().catch((e) => app.logger.warn({ err: e }, 'requeue of pending submissions failed'));
  const sweeper = setInterval(() => {
    void app.requeuePending({ unansweredOnly: true }).catch((e) => app.logger.warn({ err: e }, 'sweep of pending submissions failed'));
  }, config.sweepMs);
  sweeper.unref();
  app.logger.info({ queue: app.validateRunner.kind }, 'byok worker started');
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    // Running validations may finish; past the bound the process exits and their jobs go
    // back to the queue when their short locks lapse (BYOK_JOB_LOCK_MS).
    const bound = (Number(process.env.BYOK_SHUTDOWN_TIMEOUT_SECONDS) || 30) * 1000;
    setTimeout(() => {
      app.logger.error({ timeoutMs: bound }, 'worker shutdown took too long; exiting now');
      process.exit(1);
    }, bound).unref();
    app.logger.info('stopping: finishing the validations in flight');
    clearInterval(sweeper);
    await app.maintenanceRunner.close();
    await app.validateRunner.close();
    await app.notifyRunner.close();
    await app.store.close();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
}

main().catch((e) => {
  process.stderr.write(`byok worker failed to start: ${isByokError(e) ? `${e.code}: ${e.message}` : (e as Error).message}\n`);
  process.exit(1);
});
