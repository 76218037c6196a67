import { ByokError } from '../errors.ts';
import type { CustomModel } from '../registry/index.ts';
import type { Secrets } from '../vendors/types.ts';

/** What is needed to open keys: the vault's scoped, wiping accessor. */
export interface KeyOpener {
  withKey<T>(workspace: string, envVar: string, fn: (key: Uint8Array) => Promise<T>): Promise<T | undefined>;
}

/**
 * Opens every secret a model needs (main key and extras; a key-optional model's key when stored),
 * nested, so each is wiped when `fn` settles. Undefined when one is not stored.
 * An oauth_json credential is a whole token file, never a key to send: it is opened through
 * withModelCredentials (src/credentials), which refreshes and hands over the access token.
 */
export function withModelSecrets<T>(keys: KeyOpener, workspace: string, model: CustomModel, fn: (s: Secrets) => Promise<T>): Promise<T | undefined> {
  if (model.credential_kind === 'oauth_json') {
    return Promise.reject(new ByokError('config', `model ${model.id} uses an OAuth credentials file: open it with withModelCredentials, not as a key`));
  }
  if (model.key_optional) {
    // Optional, not absent: a key the user did store is sent; without one the call goes keyless.
    let stored = false;
    return keys
      .withKey(workspace, model.api_key_env, (key) => {
        stored = true;
        return fn({ [model.api_key_env]: key });
      })
      .then((r) => (stored ? r : fn({})));
  }
  const names = [model.api_key_env, ...model.extra_env_vars];
  const open = (i: number, acc: Secrets): Promise<T | undefined> =>
    i === names.length ? fn(acc) : keys.withKey(workspace, names[i]!, (key) => open(i + 1, { ...acc, [names[i]!]: key }));
  return open(0, {});
}
