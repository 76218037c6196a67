import type { Lang } from '../i18n/index.ts';
import type { Logger } from '../log.ts';
import type { ChannelRef } from '../queue/types.ts';
import type { CustomModel, Registry } from '../registry/index.ts';
import type { EnvInputParams, RequestResult } from '../secure-input/tokens.ts';
import type { Store } from '../store/types.ts';
import type { ProbeResult } from '../vendors/types.ts';
import type { PlatformModels } from './platform.ts';
import type { Relay, RelayKeys } from './relay.ts';

/** What the chat core needs from the rest of the app (wired in src/app.ts). */
export interface EnvInputRequester {
  request(params: EnvInputParams): Promise<RequestResult>;
  /** Remember which message shows the form, so the result can edit it (Telegram card). */
  bindMessage?(tokenId: string, messageId: string, launch?: 'web_app' | 'link'): Promise<void>;
  /** Voids a pending form by its token hash (forget me): its link answers 410. */
  void?(tokenHash: string): Promise<boolean>;
  /** Voids the pending forms of a removed model (else "already waiting" points the next model to it). */
  voidForModel?(workspace: string, modelId: string): Promise<number>;
}

export interface ChatVault extends RelayKeys {
  list(workspace: string): Promise<Array<{ env_var: string; masked: string }>>;
  fingerprintMatcher(workspace: string): Promise<(candidate: string) => boolean>;
  /** /byok key delete: the key's names (a pair for AWS), in one update. */
  deleteMany(workspace: string, envVars: string[]): Promise<string[]>;
  /** /byok forget. */
  deleteAll(workspace: string): Promise<number>;
}

export interface ChatDeps {
  store: Store;
  registry: Registry;
  vault: ChatVault;
  requests: EnvInputRequester;
  platform: PlatformModels;
  logger: Logger;
  /** Re-queues a sealed submission that is still pending for this model; false when none. */
  retest(workspace: string, modelId: string, channel: ChannelRef, lang: Lang): Promise<boolean>;
  /** Probes the vendor with the stored key (for /byok test when nothing is pending). */
  probeStored(workspace: string, model: CustomModel): Promise<ProbeResult>;
  relay?: Relay;
  /** A vendor silent this long is given up on with a notice (config.vendorIdleTimeoutMs). */
  vendorIdleTimeoutMs?: number;
}
