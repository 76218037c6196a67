import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Two cores: browser and bot tests are heavy, keep parallelism modest.
    maxWorkers: 2,
    env: { NO_COLOR: '1' },
  },
});
