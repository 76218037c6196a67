export {
  createRegistry,
  envKeySource,
  selectorOf,
  checkBaseUrl,
  looksLikeKey,
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
} from './registry.ts';
export { slugify, idBase, nameKey, newModelId, envVarFromHost, MODEL_ID_RE } from './slug.ts';
export { MODEL_SELECTOR_PREFIX, type CustomModel, type ModelStatus } from './types.ts';
export { parseExample, type ExampleDraft } from './parse-example.ts';
