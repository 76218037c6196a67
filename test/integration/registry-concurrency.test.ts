import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createRegistry } from '../../src/registry/index.ts';
import { FileStore } from '../../src/store/file-store.ts';

let dir: string;
beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'byok-conc-'));
});
afterEach(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

/** Reads and parses the YAML file in a loop until `done`; every read must parse and only grow. */
function watch(file: string, done: () => boolean): Promise<{ reads: number; maxSeen: number }> {
  return (async () => {
    let reads = 0;
    let maxSeen = 0;
    while (!done()) {
      let text: string | undefined;
      try {
        text = await fs.readFile(file, 'utf8');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      }
      if (text !== undefined) {
        const doc = YAML.parse(text) as { models: unknown[] }; // throws on a torn file
        expect(Array.isArray(doc.models)).toBe(true);
        expect(doc.models.length).toBeGreaterThanOrEqual(maxSeen);
        maxSeen = doc.models.length;
        reads++;
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    return { reads, maxSeen };
  })();
}

describe('registry concurrency (file store)', () => {
  it('50 concurrent add calls on one workspace lose nothing and never tear the YAML', async () => {
    const store = new FileStore(dir);
    const reg = createRegistry({ store, env: {} });
    const file = path.join(dir, 'workspaces/local/custom_models.yaml');
    let finished = false;
    const watcher = watch(file, () => finished);
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        reg.add('local', { upstream_model: `model-${i}`, base_url: 'https://llm.example.com/v1', name: `Model ${i}` }),
      ),
    );
    finished = true;
    const { reads } = await watcher;
    expect(results.every((r) => r.ok)).toBe(true);
    expect(reads).toBeGreaterThan(0);
    const list = await reg.list_models('local');
    expect(list.ok && list.models.length).toBe(50);
    const ids = new Set(list.ok ? list.models.map((m) => m.id) : []);
    expect(ids.size).toBe(50);
    const doc = YAML.parse(await fs.readFile(file, 'utf8')) as { models: Array<{ name: string }> };
    expect(new Set(doc.models.map((m) => m.name)).size).toBe(50);
    // no temp or lock files left behind
    expect((await fs.readdir(path.dirname(file))).filter((f) => f !== 'custom_models.yaml')).toEqual([]);
    await store.close();
  }, 120_000);

  it('two FileStore instances on one data dir (CLI + bot) interleave without losing entries', async () => {
    const a = new FileStore(dir);
    const b = new FileStore(dir);
    const regA = createRegistry({ store: a, env: {} });
    const regB = createRegistry({ store: b, env: {} });
    const file = path.join(dir, 'workspaces/tg_100/custom_models.yaml');
    let finished = false;
    const watcher = watch(file, () => finished);
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        (i % 2 ? regA : regB).add('tg:100', { upstream_model: `m-${i}`, base_url: 'https://llm.example.com/v1', name: `Shared ${i}` }),
      ),
    );
    finished = true;
    await watcher;
    expect(results.filter((r) => !r.ok)).toEqual([]);
    const fromB = await regB.list_models('tg:100');
    expect(fromB.ok && fromB.models.length).toBe(40);

    // Same display name from both processes at once: exactly one wins, the other is a conflict.
    const race = await Promise.all([
      regA.add('tg:100', { upstream_model: 'x', base_url: 'https://llm.example.com/v1', name: 'Same Name' }),
      regB.add('tg:100', { upstream_model: 'y', base_url: 'https://llm.example.com/v1', name: 'same-name' }),
    ]);
    expect(race.filter((r) => r.ok)).toHaveLength(1);
    expect(race.find((r) => !r.ok)).toMatchObject({ code: 'conflict' });
    await a.close();
    await b.close();
  }, 120_000);
});
