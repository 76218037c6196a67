import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../support/processes.ts';

/** `npm test` includes the linter (`npm run lint`: ESLint with typescript-eslint, eslint.config.js). */
describe('lint', () => {
  it('eslint reports no problem in the repository', () => {
    const eslint = path.join(ROOT, 'node_modules', 'eslint', 'bin', 'eslint.js');
    const r = spawnSync(process.execPath, [eslint, '.'], { cwd: ROOT, encoding: 'utf8', timeout: 170_000 });
    expect(r.error).toBeUndefined();
    expect(`${r.stdout}${r.stderr}`.trim()).toBe('');
    expect(r.status).toBe(0);
  }, 180_000);
});
