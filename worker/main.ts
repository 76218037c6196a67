import { loadConfig } from '../src/config.ts';
import { createApp } from '../src/app.ts';
import { isByokError } from '../src/errors.ts';

/**
 * `npm run worker`: consumes validate-key jobs from Redis (BullMQ). Bot processes run the
 * channels and consume notify jobs; any number of workers can share one Redis.
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
  app.logger.info({ queue: app.validateRunner.kind }, 'byok worker started');
  const stop = async () => {
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
