import type { CustomModel } from '../registry/types.ts';

/** Classified outcome of a vendor call, shared by the probe and the relay. */
export type VendorOutcome =
  | 'ok'
  | 'invalid_key'
  | 'invalid_model'
  | 'quota_exceeded'
  | 'rate_limited'
  | 'vendor_unavailable'
  | 'unreachable'
  | 'rejected';

/** Plaintext secrets for one call, as bytes the caller wipes afterwards. */
export type Secrets = Record<string, Uint8Array>;

export interface ProbeResult {
  outcome: VendorOutcome;
  /** Short vendor message with no key material. */
  message?: string;
  retryAfterMs?: number;
  status?: number;
}

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export interface StreamOptions {
  signal?: AbortSignal;
  thinking?: boolean;
  json?: boolean;
}

export type StreamEvent =
  | { type: 'text'; text: string }
  | { type: 'reasoning'; text: string }
  | { type: 'usage'; input_tokens: number; output_tokens: number }
  | { type: 'done'; finish_reason?: string };

/** A wire protocol client. Implementations: openai, azure-openai, anthropic, bedrock, gemini-code-assist. */
export interface Wire {
  readonly id: CustomModel['wire'];
  probe(model: CustomModel, secrets: Secrets, opts?: { signal?: AbortSignal }): Promise<ProbeResult>;
  /** Streams an answer; throws VendorError for a classified failure. */
  stream(model: CustomModel, secrets: Secrets, messages: ChatMessage[], opts?: StreamOptions): AsyncIterable<StreamEvent>;
}
