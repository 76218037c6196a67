/**
 * The `azure-openai` wire: the openai chat-completions engine with Azure's shapes.
 *  - deployments: `<resource>/openai/deployments/<upstream_model>/chat/completions?api-version=…`
 *    (api-version from model.query, default 2024-10-21, the current GA version);
 *  - v1: when base_url already ends with `/openai/v1`, `<base_url>/chat/completions` with the
 *    deployment name as `model` in the body, and no api-version (v1 refuses it).
 * Auth: the `api-key` header. Reasoning deployments (capabilities.reasoning) get
 * `max_completion_tokens`, others `max_tokens` (older api-versions do not know the former).
 */
import type { CustomModel } from '../../registry/types.ts';
import type { NetOptions } from '../net.ts';
import { joinUrl } from '../net.ts';
import type { Wire } from '../types.ts';
import { createChatCompletionsWire, type ChatCompletionsShape } from './openai.ts';

export const AZURE_DEFAULT_API_VERSION = '2024-10-21';

export function isAzureV1(baseUrl: string): boolean {
  try {
    return /\/openai\/v1\/?$/.test(new URL(baseUrl).pathname);
  } catch {
    return false;
  }
}

export const azureShape: ChatCompletionsShape = {
  id: 'azure-openai',
  url(m: CustomModel): string {
    if (isAzureV1(m.base_url)) {
      const q = { ...m.query };
      delete q['api-version'];
      return joinUrl(m.base_url, '/chat/completions', q);
    }
    const root = m.base_url.replace(/\/+$/, '').replace(/\/openai$/, '');
    const q = { ...m.query, 'api-version': m.query?.['api-version'] || AZURE_DEFAULT_API_VERSION };
    return joinUrl(root, `/openai/deployments/${encodeURIComponent(m.upstream_model)}/chat/completions`, q);
  },
  authHeaders: (key): Record<string, string> => (key ? { 'api-key': key } : {}),
  sendModel: (m) => isAzureV1(m.base_url),
  maxTokensField: (m) => (m.capabilities?.reasoning ? 'max_completion_tokens' : 'max_tokens'),
};

export function createAzureOpenAIWire(netOpts?: NetOptions): Wire {
  return createChatCompletionsWire(azureShape, netOpts);
}

export const azureOpenAIWire: Wire = createAzureOpenAIWire();
