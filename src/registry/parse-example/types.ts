/** The draft parse-example proposes, and the state its readers fill in while reading an example. */
import type { ThinkingRule } from '../../vendors/template-schema.ts';
import type { Obj, Val } from './literal.ts';

export interface ExampleDraft {
  upstream_model: string;
  /** Without /chat/completions, /messages, /completions, /responses (anthropic: ends in /v1). */
  base_url: string;
  wire: 'openai' | 'anthropic' | 'azure-openai';
  /** Suggested vault name for the key. */
  api_key_env: string;
  /** Non-auth headers only. */
  headers: Record<string, string>;
  /** Vendor-specific body fields beyond the standard ones. */
  request_fields: Record<string, unknown>;
  thinking?: ThinkingRule;
  max_tokens?: number;
  /** Non-secret query parameters the endpoint needs (Azure `api-version`). */
  query?: Record<string, string>;
  source: 'curl' | 'python' | 'javascript';
}

export const MAX_EXAMPLE_BYTES = 64 * 1024;

export const KEY_DROPPED_WARNING =
  'An API key was found in the example and was dropped; it was not stored. If it is a real key, rotate it.';

/** What the readers (curl.ts, code.ts) found; draft.ts turns it into an ExampleDraft. */
export interface Ctx {
  source: ExampleDraft['source'];
  text: string;
  url?: string;
  /** The URL is an SDK base URL (paths are appended by the SDK). */
  sdk?: 'openai' | 'anthropic' | 'azure';
  /** Kind of call when known from an SDK method. */
  endpoint?: 'chat' | 'messages' | 'completions' | 'responses';
  headers: Array<[string, Val]>;
  body?: Obj;
  /** Values that carried a key (auth header, api_key=, apiKey:). */
  keyValues: Val[];
  /** Literal keys seen; never output. */
  secrets: Set<string>;
  realKeySeen: boolean;
  envFromKey: string[];
  warnings: string[];
  bodyUnreadable?: boolean;
  /** From the AzureOpenAI SDK constructor (api_version=, azure_deployment=). */
  azureApiVersion?: string;
  azureDeployment?: string;
}

/** A user-input problem with a stable reason (the chat translates by it). */
export class ExampleError extends Error {
  constructor(message: string, readonly reason: string) {
    super(message);
  }
}
