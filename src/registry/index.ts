/** The registry's public surface: production code imports from here, never from its parts. */
export { createRegistry } from './registry.ts';
export {
  envKeySource,
  selectorOf,
  MODELS_DOC,
  DEFAULT_MAX_TOKENS,
  MAX_TOKENS_LIMIT,
  type Registry,
  type RegistryDeps,
  type KeySource,
  type NeedEnvInput,
  type AddResult,
  type AddArgs,
  type AddTemplateOptions,
  type ModelChanges,
  type TemplateSummary,
  type VendorModel,
  type VendorModels,
  type ModelsDoc,
} from './contract.ts';
export { addArgsFromDraft, checkBaseUrl, looksLikeKey } from './validation.ts';
export { hostKeyName, keyFamily } from './key-hosts.ts';
export { reasoningParamOf, withReasoningParam } from './reasoning-param.ts';
export { slugify, idBase, nameKey, newModelId, envVarFromHost, MODEL_ID_RE } from './slug.ts';
export { MODEL_SELECTOR_PREFIX, type CustomModel, type ModelStatus } from './types.ts';
export { parseExample, type ExampleDraft } from './parse-example.ts';
