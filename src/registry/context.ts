/** What the parts of the registry share (built once by createRegistry). */
import type { Catalog } from './catalog.ts';
import type { KeySource } from './contract.ts';
import type { ModelsDocAccess } from './models-doc.ts';

export interface RegistryCtx {
  keys: KeySource;
  now: () => Date;
  catalog: Catalog;
  doc: ModelsDocAccess;
}
