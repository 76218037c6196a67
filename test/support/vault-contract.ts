import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ByokError } from '../../src/errors.ts';
import { BoxKeys } from '../../src/secrets/box-keys.ts';
import { makeKeyring, type MasterKeyring } from '../../src/secrets/master-key.ts';
import { getSodium } from '../../src/secrets/sodium.ts';
import { Vault, VAULT_DOC, type VaultDoc } from '../../src/secrets/vault.ts';
import { SYSTEM_SCOPE, type Store } from '../../src/store/types.ts';

/**
 * What a backend gives the vault contract: a fresh, empty store; `dumpRaw()` = every byte
 * the backend holds as text (files in the data dir; for Redis `KEYS *` + values), for the
 * canary check; optionally a second client on the same backend (another "process").
 */
export interface VaultStoreHandle {
  store: Store;
  dumpRaw(): Promise<string>;
  secondStore?(): Promise<Store>;
  dispose(): Promise<void>;
}

const enc = new TextEncoder();
const bytes = (s: string): Uint8Array => enc.encode(s);

async function randomKey(): Promise<Uint8Array> {
  const s = await getSodium();
  return s.randombytes_buf(32);
}

async function expectByok(p: Promise<unknown>, code: string, re?: RegExp): Promise<ByokError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(ByokError);
    expect((e as ByokError).code).toBe(code);
    if (re) expect((e as ByokError).message).toMatch(re);
    return e as ByokError;
  }
  throw new Error(`expected ByokError(${code})`);
}

export function vaultContract(name: string, makeStore: () => Promise<VaultStoreHandle>): void {
  describe(`vault contract: ${name}`, () => {
    let h: VaultStoreHandle;
    let store: Store;
    let mkA: Uint8Array;
    let ringA: MasterKeyring;
    let vault: Vault;

    beforeEach(async () => {
      h = await makeStore();
      store = h.store;
      mkA = await randomKey();
      ringA = await makeKeyring(mkA);
      vault = new Vault(store, ringA);
    });
    afterEach(async () => {
      await h.dispose();
    });

    it('put / has / list (masked) / delete', async () => {
      const k1 = bytes('sk-proj-abcdefghijklmnop1234WXYZ');
      const r = await vault.put('local', 'OPENAI_API_KEY', k1);
      expect(r.masked).toBe('****WXYZ');
      expect(k1[0]).toBe('s'.charCodeAt(0)); // the caller's array is not touched
      await vault.put('local', 'SHORT_KEY', bytes('abc123'));
      await vault.put('tg:42', 'OPENAI_API_KEY', bytes('another-key-000000000009'));
      expect(await vault.has('local', 'OPENAI_API_KEY')).toBe(true);
      expect(await vault.has('local', 'DASHSCOPE_API_KEY')).toBe(false);
      const list = await vault.list('local');
      expect(list.map((e) => [e.env_var, e.masked])).toEqual([
        ['OPENAI_API_KEY', '****WXYZ'],
        ['SHORT_KEY', '****'],
      ]);
      expect(Date.parse(list[0].updated_at)).toBeGreaterThan(0);
      expect(await vault.list('wx:nobody')).toEqual([]);

      expect(await vault.delete('local', 'OPENAI_API_KEY')).toBe(true);
      expect(await vault.delete('local', 'OPENAI_API_KEY')).toBe(false);
      expect(await vault.has('local', 'OPENAI_API_KEY')).toBe(false);
      expect(await vault.has('tg:42', 'OPENAI_API_KEY')).toBe(true);
      expect(await vault.delete('local', 'SHORT_KEY')).toBe(true);
      expect(await store.getDoc('local', VAULT_DOC)).toBeUndefined();
      expect(await store.listScopes(VAULT_DOC)).toEqual(['tg:42']);
    });

    it('refuses bad names, bad workspaces, empty keys', async () => {
      await expectByok(vault.put('local', 'lower_case', bytes('x'.repeat(20))), 'invalid_input');
      await expectByok(vault.put('local', '__proto__', bytes('x'.repeat(20))), 'invalid_input');
      await expectByok(vault.put('../etc', 'OPENAI_API_KEY', bytes('x'.repeat(20))), 'invalid_input');
      await expectByok(vault.put(SYSTEM_SCOPE, 'OPENAI_API_KEY', bytes('x'.repeat(20))), 'invalid_input');
      await expectByok(vault.put('local', 'OPENAI_API_KEY', new Uint8Array(0)), 'invalid_input');
    });

    it('withKey hands out the key and wipes it afterwards (also when fn throws)', async () => {
      const key = bytes('sk-ant-api03-0123456789abcdef');
      await vault.put('local', 'ANTHROPIC_API_KEY', key);
      let captured: Uint8Array | undefined;
      const out = await vault.withKey('local', 'ANTHROPIC_API_KEY', async (k) => {
        captured = k;
        expect(Buffer.from(k).equals(Buffer.from(key))).toBe(true);
        return 'done';
      });
      expect(out).toBe('done');
      expect(captured!.length).toBe(key.length);
      expect(captured!.every((b) => b === 0)).toBe(true);

      let captured2: Uint8Array | undefined;
      await expect(
        vault.withKey('local', 'ANTHROPIC_API_KEY', async (k) => {
          captured2 = k;
          throw new Error('vendor down');
        }),
      ).rejects.toThrow('vendor down');
      expect(captured2!.every((b) => b === 0)).toBe(true);

      expect(await vault.withKey('local', 'OPENAI_API_KEY', async () => 'never')).toBeUndefined();
    });

    it('a sealed record copied to another workspace or name does not open', async () => {
      const key = bytes('sk-proj-bound-to-its-place-0001');
      await vault.put('tg:1', 'OPENAI_API_KEY', key);
      const doc = (await store.getDoc<VaultDoc>('tg:1', VAULT_DOC))!;
      const rec = doc.OPENAI_API_KEY;
      await store.updateDoc<VaultDoc, void>('tg:2', VAULT_DOC, () => ({ value: { OPENAI_API_KEY: rec }, result: undefined }));
      await store.updateDoc<VaultDoc, void>('tg:1', VAULT_DOC, (cur) => ({ value: { ...cur!, DEEPSEEK_API_KEY: rec }, result: undefined }));

      let called = false;
      const e1 = await expectByok(vault.withKey('tg:2', 'OPENAI_API_KEY', async () => (called = true)), 'internal', /does not open.*copied from another workspace or key name/);
      expect(e1.message).toContain('tg:2');
      await expectByok(vault.withKey('tg:1', 'DEEPSEEK_API_KEY', async () => (called = true)), 'internal', /does not open/);
      expect(called).toBe(false);
      // The original still opens, and the copies show no hint either.
      expect(await vault.withKey('tg:1', 'OPENAI_API_KEY', async (k) => k.length)).toBe(key.length);
      expect((await vault.list('tg:2'))[0].masked).toBe('****');
      // The copy in another workspace is not recognised as that workspace's key.
      expect(await vault.isKnownKey('tg:2', 'sk-proj-bound-to-its-place-0001')).toBe(false);
    });

    it('a tampered record does not open', async () => {
      const s = await getSodium();
      await vault.put('local', 'OPENAI_API_KEY', bytes('sk-proj-tamper-me-000000000'));
      const original = (await store.getDoc<VaultDoc>('local', VAULT_DOC))!.OPENAI_API_KEY;
      const ct = s.from_base64(original.ct);
      ct[3] ^= 1;
      await store.updateDoc<VaultDoc, void>('local', VAULT_DOC, () => ({ value: { OPENAI_API_KEY: { ...original, ct: s.to_base64(ct) } }, result: undefined }));
      await expectByok(vault.withKey('local', 'OPENAI_API_KEY', async () => 1), 'internal', /does not open/);

      const nonce = s.from_base64(original.nonce);
      nonce[0] ^= 0x80;
      await store.updateDoc<VaultDoc, void>('local', VAULT_DOC, () => ({ value: { OPENAI_API_KEY: { ...original, nonce: s.to_base64(nonce) } }, result: undefined }));
      await expectByok(vault.withKey('local', 'OPENAI_API_KEY', async () => 1), 'internal', /does not open/);

      // Relabelled with another configured key id: the AD carries the kid, so it still fails.
      const mkB = await randomKey();
      const ringAB = await makeKeyring(mkA, [mkB]);
      const ringBA = await makeKeyring(mkB, [mkA]);
      await store.updateDoc<VaultDoc, void>('local', VAULT_DOC, () => ({ value: { OPENAI_API_KEY: { ...original, kid: ringBA.current.id } }, result: undefined }));
      await expectByok(new Vault(store, ringAB).withKey('local', 'OPENAI_API_KEY', async () => 1), 'internal', /does not open/);
    });

    it('master key rotation: old records readable via the previous key, rotate re-seals, then the old key can go', async () => {
      await vault.put('local', 'OPENAI_API_KEY', bytes('sk-proj-rotate-one-0000000001'));
      await vault.put('tg:7', 'OPENAI_API_KEY', bytes('sk-proj-rotate-two-0000000002'));
      await vault.put('tg:7', 'SHORT_KEY', bytes('short'));
      const oldKid = ringA.current.id;

      const mkB = await randomKey();
      const ringB = await makeKeyring(mkB); // new key only: old records are not readable
      const err = await expectByok(new Vault(store, ringB).withKey('local', 'OPENAI_API_KEY', async () => 1), 'config', /BYOK_MASTER_KEY_PREVIOUS/);
      expect(err.message).toContain(oldKid);
      expect(await new Vault(store, ringB).rotate().catch((e: ByokError) => e.code)).toBe('config');

      const ringBA = await makeKeyring(mkB, [mkA]);
      const vBA = new Vault(store, ringBA);
      // New writes use the new key; old records stay readable.
      await vBA.put('local', 'DEEPSEEK_API_KEY', bytes('sk-deepseek-new-0000000003'));
      expect(await vBA.withKey('tg:7', 'OPENAI_API_KEY', async (k) => new TextDecoder().decode(k))).toBe('sk-proj-rotate-two-0000000002');
      expect((await vBA.list('local')).map((e) => e.masked)).toEqual(['****0003', '****0001']);

      const before = (await store.getDoc<VaultDoc>('tg:7', VAULT_DOC))!;
      expect(await vBA.rotate()).toEqual({ resealed: 3, workspaces: 2 });
      const after = (await store.getDoc<VaultDoc>('tg:7', VAULT_DOC))!;
      expect(after.OPENAI_API_KEY.kid).toBe(ringBA.current.id);
      expect(after.OPENAI_API_KEY.nonce).not.toBe(before.OPENAI_API_KEY.nonce);
      expect(after.OPENAI_API_KEY.updated_at).toBe(before.OPENAI_API_KEY.updated_at);
      expect(await vBA.rotate()).toEqual({ resealed: 0, workspaces: 2 });

      // The old key dropped: everything opens with the new key alone.
      const vB = new Vault(store, ringB);
      expect(await vB.withKey('local', 'OPENAI_API_KEY', async (k) => new TextDecoder().decode(k))).toBe('sk-proj-rotate-one-0000000001');
      expect(await vB.withKey('tg:7', 'SHORT_KEY', async (k) => k.length)).toBe(5);
      expect((await vB.list('tg:7')).map((e) => e.masked)).toEqual(['****0002', '****']);
      expect(await vB.isKnownKey('tg:7', 'sk-proj-rotate-two-0000000002')).toBe(true);
    });

    it('rotation reaches every workspace, odd ids included (wx:group_abc is a WeChat contact, not a group)', async () => {
      const odd = ['wx:group_abc', 'wx:tg_1', 'tg:group:-1001234', 'tg:-5', 'wx:room-a_b.c@chatroom', 'ops-team'];
      for (const [i, ws] of odd.entries()) await vault.put(ws, 'OPENAI_API_KEY', bytes(`sk-proj-odd-workspace-${String(i).padStart(6, '0')}`));
      expect(await store.listScopes(VAULT_DOC)).toEqual([...odd].sort());
      const mkB = await randomKey();
      const ringBA = await makeKeyring(mkB, [mkA]);
      expect(await new Vault(store, ringBA).rotate()).toEqual({ resealed: odd.length, workspaces: odd.length });
      // The old key gone: every one of them still opens.
      const vB = new Vault(store, await makeKeyring(mkB));
      for (const [i, ws] of odd.entries()) {
        expect(await vB.withKey(ws, 'OPENAI_API_KEY', async (k) => new TextDecoder().decode(k))).toBe(`sk-proj-odd-workspace-${String(i).padStart(6, '0')}`);
      }
    });

    it('the fingerprint matcher recognises the workspace’s own keys and nothing else', async () => {
      await vault.put('tg:5', 'OPENAI_API_KEY', bytes('sk-proj-mine-abcdefghijklmn'));
      await vault.put('tg:5', 'QWEN_KEY', bytes('sk-qwen-mine-0000000000000'));
      await vault.put('tg:6', 'OPENAI_API_KEY', bytes('sk-proj-theirs-abcdefghijk'));
      const match = await vault.fingerprintMatcher('tg:5');
      expect(match('sk-proj-mine-abcdefghijklmn')).toBe(true);
      expect(match('  sk-qwen-mine-0000000000000\n')).toBe(true);
      expect(match(bytes('sk-qwen-mine-0000000000000'))).toBe(true);
      expect(match('sk-proj-mine-abcdefghijklmN')).toBe(false);
      expect(match('sk-proj-theirs-abcdefghijk')).toBe(false);
      expect(match('')).toBe(false);
      expect(await vault.isKnownKey('tg:6', 'sk-proj-theirs-abcdefghijk')).toBe(true);
      expect((await vault.fingerprintMatcher('wx:empty'))('anything')).toBe(false);
      // The same key in two workspaces has unrelated fingerprints (no cross-workspace correlation).
      await vault.put('tg:6', 'QWEN_KEY', bytes('sk-qwen-mine-0000000000000'));
      const fp5 = (await store.getDoc<VaultDoc>('tg:5', VAULT_DOC))!.QWEN_KEY.fp;
      const fp6 = (await store.getDoc<VaultDoc>('tg:6', VAULT_DOC))!.QWEN_KEY.fp;
      expect(fp5).not.toBe(fp6);
    });

    it('canary: the raw store holds neither the key nor its encodings nor its last 4', async () => {
      const s = await getSodium();
      const canaryText = 'sk-CANARY-7f3a9c2e5b1d4f6a8c0e~q.Z';
      const canary = bytes(canaryText);
      await vault.put('local', 'OPENAI_API_KEY', canary);
      await vault.put('tg:9', 'OPENAI_API_KEY', canary);
      const boxes = new BoxKeys(store, ringA);
      await boxes.current();
      expect((await vault.list('local'))[0].masked).toBe('****~q.Z');
      const raw = await h.dumpRaw();
      expect(raw.length).toBeGreaterThan(0);
      const needles = [
        canaryText,
        'CANARY',
        '~q.Z',
        Buffer.from(canary).toString('base64'),
        Buffer.from(canary).toString('base64url'),
        Buffer.from(canary).toString('hex'),
        s.to_base64(canary),
        // Base64 of the key at the two other alignments (the key inside a bigger blob).
        Buffer.from([0, ...canary]).toString('base64').slice(4, -4),
        Buffer.from([0, 0, ...canary]).toString('base64').slice(4, -4),
      ];
      for (const n of needles) expect(raw.includes(n), `raw store contains ${JSON.stringify(n)}`).toBe(false);
    });

    describe('box keys', () => {
      it('opens what the browser sealed to the current public key', async () => {
        const s = await getSodium();
        const boxes = new BoxKeys(store, ringA);
        const { id, publicKey } = await boxes.current();
        expect(id).toMatch(/^[0-9a-f]{16}$/);
        expect(publicKey.length).toBe(s.crypto_box_PUBLICKEYBYTES);
        const sealed = s.crypto_box_seal(bytes('sk-from-the-browser-000001'), publicKey);
        const opened = await boxes.open(id, sealed);
        expect(new TextDecoder().decode(opened)).toBe('sk-from-the-browser-000001');
        // Same keypair again, from another instance (another process) on the same store.
        expect((await new BoxKeys(store, ringA).current()).id).toBe(id);
        // The secret key is sealed at rest.
        const raw = JSON.stringify(await store.getDoc(SYSTEM_SCOPE, 'box_keys'));
        expect(raw).not.toContain('privateKey');
        // A garbled box: invalid_input.
        sealed[sealed.length - 1] ^= 1;
        await expectByok(boxes.open(id, sealed), 'invalid_input');
      });

      it('an unknown or malformed id is stale_key_id', async () => {
        const s = await getSodium();
        const boxes = new BoxKeys(store, ringA);
        const { publicKey } = await boxes.current();
        const sealed = s.crypto_box_seal(bytes('x'.repeat(20)), publicKey);
        await expectByok(boxes.open('0123456789abcdef', sealed), 'stale_key_id', /reload/);
        await expectByok(boxes.open('../../etc', sealed), 'stale_key_id');
        await expectByok(boxes.open('__proto__', sealed), 'stale_key_id');
      });

      it('concurrent current() calls create one keypair (also across store clients)', async () => {
        const stores = [store];
        if (h.secondStore) stores.push(await h.secondStore());
        const calls = Array.from({ length: 12 }, (_, i) => new BoxKeys(stores[i % stores.length], ringA).current());
        const ids = new Set((await Promise.all(calls)).map((c) => c.id));
        expect(ids.size).toBe(1);
        const doc = (await store.getDoc<{ keys: Record<string, unknown> }>(SYSTEM_SCOPE, 'box_keys'))!;
        expect(Object.keys(doc.keys)).toEqual([...ids]);
        for (const st of stores.slice(1)) await st.close();
      });

      it('rotate keeps the previous keypair openable for the grace period', async () => {
        const s = await getSodium();
        let now = Date.now();
        const boxes = new BoxKeys(store, ringA, { graceMs: 60_000, now: () => now });
        const first = await boxes.current();
        const sealedOld = s.crypto_box_seal(bytes('sealed-before-rotation-01'), first.publicKey);
        const rotated = await boxes.rotate();
        expect(rotated.retired).toBe(first.id);
        expect(rotated.id).not.toBe(first.id);
        expect((await boxes.current()).id).toBe(rotated.id);
        expect(new TextDecoder().decode(await boxes.open(first.id, sealedOld))).toBe('sealed-before-rotation-01');
        now += 61_000;
        await expectByok(boxes.open(first.id, sealedOld), 'stale_key_id');
        await boxes.rotate(); // prunes the expired one
        const doc = (await store.getDoc<{ keys: Record<string, unknown> }>(SYSTEM_SCOPE, 'box_keys'))!;
        expect(Object.keys(doc.keys)).not.toContain(first.id);
        expect(Object.keys(doc.keys)).toHaveLength(2);
      });

      it('refuses to publish a public key that was swapped in the store', async () => {
        const s = await getSodium();
        const boxes = new BoxKeys(store, ringA);
        const { id } = await boxes.current();
        const evil = s.crypto_box_keypair();
        await store.updateDoc<{ keys: Record<string, { pk: string }> }, void>(SYSTEM_SCOPE, 'box_keys', (cur) => {
          const keys = { ...cur!.keys, [id]: { ...cur!.keys[id], pk: s.to_base64(evil.publicKey) } };
          return { value: { ...cur!, keys }, result: undefined };
        });
        await expectByok(boxes.current(), 'internal', /altered/);
      });

      it('box secret keys follow a master key rotation', async () => {
        const s = await getSodium();
        const old = await new BoxKeys(store, ringA).current();
        const mkB = await randomKey();
        const ringBA = await makeKeyring(mkB, [mkA]);
        expect(await new BoxKeys(store, ringBA).resealUnderCurrentMasterKey()).toEqual({ resealed: 1, unopenable: 0 });
        const boxesB = new BoxKeys(store, await makeKeyring(mkB));
        expect((await boxesB.current()).id).toBe(old.id);
        const sealed = s.crypto_box_seal(bytes('after-master-rotation-01'), old.publicKey);
        expect(new TextDecoder().decode(await boxesB.open(old.id, sealed))).toBe('after-master-rotation-01');
        // Under a master key that knows none of them: nothing is replaced, pruned or dropped
        // (the processes that have the key still need it), and using it is a transient error.
        const before = JSON.stringify(await store.getDoc(SYSTEM_SCOPE, 'box_keys'));
        const boxesC = new BoxKeys(store, await makeKeyring(await randomKey()));
        await expectByok(boxesC.current(), 'master_key_unavailable', new RegExp(`sealed under master key ${ringBA.current.id}`));
        await expectByok(boxesC.open(old.id, sealed), 'master_key_unavailable');
        await expectByok(boxesC.rotate(), 'master_key_unavailable');
        expect(await boxesC.resealUnderCurrentMasterKey()).toEqual({ resealed: 0, unopenable: 1 });
        const after = await store.getDoc<{ current: string | null; keys: Record<string, unknown> }>(SYSTEM_SCOPE, 'box_keys');
        expect(Object.keys(after!.keys)).toEqual([old.id]);
        expect(JSON.stringify(after!.keys)).toBe(JSON.stringify(JSON.parse(before).keys));
        // The explicit rotation stopped publishing the unopenable pair (current is null) but kept it.
        expect(after!.current).toBeNull();
        // Whoever has the key still opens it; a new current pair joins it instead of replacing it.
        expect(new TextDecoder().decode(await boxesB.open(old.id, sealed))).toBe('after-master-rotation-01');
        const fresh = await boxesB.current();
        expect(fresh.id).not.toBe(old.id);
        await expectByok(boxesC.current(), 'master_key_unavailable');
        const last = await store.getDoc<{ current: string; keys: Record<string, unknown> }>(SYSTEM_SCOPE, 'box_keys');
        expect(Object.keys(last!.keys).sort()).toEqual([old.id, fresh.id].sort());
        expect(last!.current).toBe(fresh.id);
      });
    });
  });
}
