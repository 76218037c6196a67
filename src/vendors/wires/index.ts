/**
 * Wire registry. `getWire(id)` returns the shared client, which uses the process-wide network
 * policy (`configureVendorNet` in net.ts, from config at start-up); `createWire(id, net)`
 * builds one with an explicit policy (tests, tools).
 */
import { ByokError } from '../../errors.ts';
import type { NetOptions } from '../net.ts';
import type { WireId } from '../template-schema.ts';
import type { Wire } from '../types.ts';
import { anthropicWire, createAnthropicWire } from './anthropic.ts';
import { azureOpenAIWire, createAzureOpenAIWire } from './azure-openai.ts';
import { bedrockWire, createBedrockWire } from './bedrock.ts';
import { createGeminiCodeAssistWire, geminiCodeAssistWire } from './gemini-code-assist.ts';
import { createOpenAIWire, openaiWire } from './openai.ts';

const shared: Record<WireId, Wire> = {
  openai: openaiWire,
  'azure-openai': azureOpenAIWire,
  anthropic: anthropicWire,
  bedrock: bedrockWire,
  'gemini-code-assist': geminiCodeAssistWire,
};

export function getWire(id: WireId | string): Wire {
  const w = shared[id as WireId];
  if (!w) throw new ByokError('invalid_input', `unknown wire "${id}"`);
  return w;
}

export function createWire(id: WireId | string, net?: NetOptions): Wire {
  switch (id) {
    case 'openai':
      return createOpenAIWire(net);
    case 'azure-openai':
      return createAzureOpenAIWire(net);
    case 'anthropic':
      return createAnthropicWire(net);
    case 'bedrock':
      return createBedrockWire(net);
    case 'gemini-code-assist':
      return createGeminiCodeAssistWire(net);
    default:
      throw new ByokError('invalid_input', `unknown wire "${id}"`);
  }
}

export { createAnthropicWire, createAzureOpenAIWire, createBedrockWire, createGeminiCodeAssistWire, createOpenAIWire };
