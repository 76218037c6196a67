import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { FileStore } from '../../src/store/file-store.ts';
import { vaultContract } from '../support/vault-contract.ts';

async function readAll(dir: string): Promise<string> {
  let out = '';
  for (const e of await fs.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    out += e.isDirectory() ? await readAll(p) : `\n${p}\n${(await fs.readFile(p)).toString('latin1')}`;
  }
  return out;
}

vaultContract('FileStore', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'byok-vault-'));
  const store = new FileStore(dir);
  return {
    store,
    dumpRaw: () => readAll(dir),
    secondStore: async () => new FileStore(dir),
    dispose: async () => {
      await store.close();
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
});
