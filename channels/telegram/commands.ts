import { t, type Lang, type MessageKey } from '../../src/i18n/index.ts';

/** The command menu registered with setMyCommands (default scope: English; `zh`: Chinese). */
const COMMANDS: Array<[string, MessageKey]> = [
  ['start', 'telegram.cmd_start'],
  ['help', 'telegram.cmd_help'],
  ['model', 'telegram.cmd_model'],
  ['byok', 'telegram.cmd_byok'],
  ['reset', 'telegram.cmd_reset'],
  ['lang', 'telegram.cmd_lang'],
];

export function commandList(lang: Lang): Array<{ command: string; description: string }> {
  return COMMANDS.map(([command, key]) => ({ command, description: t(lang, key).slice(0, 256) }));
}
