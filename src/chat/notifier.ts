import type { ChannelAdapter } from '../../channels/types.ts';
import type { Lang } from '../i18n/index.ts';
import type { Logger } from '../log.ts';
import type { NotifyPayload } from '../queue/types.ts';
import type { Registry } from '../registry/registry.ts';
import { getTemplate } from '../vendors/templates.ts';
import { outcomeText } from './outcomes.ts';

/**
 * Channel-agnostic delivery of key-validation results to the chat that asked. Channels
 * plug in with addChannel; a channel with `keyResult` (Telegram) edits its card, others
 * get a plain message. A payload for a channel this process does not run is an error, so
 * the job runner retries it (another bot process may run that channel).
 */
export class Notifier {
  private readonly channels = new Map<string, ChannelAdapter>();

  constructor(private readonly deps: { registry: Registry; logger: Logger }) {}

  addChannel(adapter: ChannelAdapter): void {
    this.channels.set(adapter.name, adapter);
  }

  async deliver(p: NotifyPayload): Promise<void> {
    const adapter = this.channels.get(p.channel.channel);
    if (!adapter) throw new Error(`no channel "${p.channel.channel}" in this process`);
    const lang: Lang = p.channel.lang ?? 'en';
    const got = await this.deps.registry.get(p.workspace, p.model_id);
    const model = got.ok ? got.model : { id: p.model_id, name: p.model_id, vendor: '' };
    const text = outcomeText(lang, p.outcome, { model, masked: p.masked_key, message: p.message });
    if (adapter.keyResult) {
      await adapter.keyResult(p.channel, {
        workspace: p.workspace,
        model_id: p.model_id,
        outcome: p.outcome,
        text,
        masked: p.masked_key,
        vendor_name: getTemplate(model.vendor)?.name ?? model.vendor,
        model_name: model.name,
        lang,
      });
    } else {
      await adapter.send(p.channel, { text, noPreview: true });
    }
    this.deps.logger.info({ channel: p.channel.channel, outcome: p.outcome, model: p.model_id }, 'key result delivered');
  }
}
