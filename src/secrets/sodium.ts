import sodium from 'libsodium-wrappers';

/**
 * libsodium, initialised once. In ESM only the default import works (named imports crash
 * before `ready`), and every call must wait for `ready`: use `await getSodium()`.
 *
 * Known limit of libsodium.js: inputs and outputs pass through the WebAssembly heap, which
 * is freed but not zeroed after each call. Plaintext we own in JS (`Uint8Array`s) is wiped
 * with `memzero`; heap copies are only overwritten when the allocator reuses the memory.
 */
export type Sodium = typeof sodium;

let readyOnce: Promise<Sodium> | undefined;

export function getSodium(): Promise<Sodium> {
  readyOnce ??= sodium.ready.then(() => sodium);
  return readyOnce;
}

/** base64url without padding (libsodium's default variant); for sealed, non-secret bytes only. */
export function b64(s: Sodium, bytes: Uint8Array): string {
  return s.to_base64(bytes, s.base64_variants.URLSAFE_NO_PADDING);
}

export function unb64(s: Sodium, text: string): Uint8Array {
  return s.from_base64(text, s.base64_variants.URLSAFE_NO_PADDING);
}

const encoder = new TextEncoder();

/** UTF-8 bytes of a non-secret string (associated data, contexts). */
export function utf8(text: string): Uint8Array {
  return encoder.encode(text);
}
