import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../support/processes.ts';

/**
 * `npm test` includes the typecheck (the same `tsc --noEmit` as `npm run typecheck`, with the
 * TypeScript 5 compiler from package.json): a type error fails the suite like a failing test.
 */
describe('typecheck', () => {
  it('tsc --noEmit reports no error over src, channels, worker, test and bench', () => {
    const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    const r = spawnSync(process.execPath, [tsc, '--noEmit', '-p', path.join(ROOT, 'tsconfig.json')], { cwd: ROOT, encoding: 'utf8', timeout: 170_000 });
    expect(r.error).toBeUndefined();
    expect(`${r.stdout}${r.stderr}`.trim()).toBe('');
    expect(r.status).toBe(0);
  }, 180_000);
});
