import crypto from 'node:crypto';
import { isValidWorkspace } from '../../src/store/types.ts';
import type { Choice } from '../../src/channel.ts';

/** Workspace ids allow `[A-Za-z0-9@._-]`, at most 128 characters after `wx:`. */
const MAX_ID = 128;

/**
 * A puppet id as a workspace-safe id. Ids that are already safe are kept as they are
 * (so `wx:<contact id>` stays readable and stable); any other id has its unsafe characters
 * replaced and a short hash of the original appended, so two different ids never collide.
 */
export function sanitizeId(id: string, budget = MAX_ID): string {
  if (id.length > 0 && id.length <= budget && /^[A-Za-z0-9@._-]+$/.test(id) && !id.includes('..')) return id;
  const hash = crypto.createHash('sha256').update(id).digest('hex').slice(0, 12);
  const clean = id.replace(/[^A-Za-z0-9@._-]/g, '_').replace(/\.{2,}/g, '_');
  return `${clean.slice(0, budget - hash.length - 1)}.${hash}`.replace(/^\./, '_.');
}

/** `wx:<contact id>`: a WeChat user's own workspace. */
export function workspaceOf(contactId: string): string {
  const ws = `wx:${sanitizeId(contactId)}`;
  if (!isValidWorkspace(ws)) throw new Error('wechat: cannot build a workspace id');
  return ws;
}

/** `wx:room-<room id>`: a room's shared chat state (model choice, history). */
export function groupWorkspaceOf(roomId: string): string {
  const ws = `wx:room-${sanitizeId(roomId, MAX_ID - 'room-'.length)}`;
  if (!isValidWorkspace(ws)) throw new Error('wechat: cannot build a room workspace id');
  return ws;
}

/**
 * WeChat has no buttons: choices become a numbered list with the command to type or the
 * link to open. Skipped when the text already carries a numbered list of at least as many
 * items (the router's /model list), so nothing is shown twice.
 */
export function renderChoices(text: string, choices: Choice[][] | undefined): string {
  const flat = (choices ?? []).flat();
  if (!flat.length) return text;
  const numbered = text.match(/^\s*\d+[.)] /gm)?.length ?? 0;
  if (numbered >= flat.length) return text;
  const lines = flat.map((c, i) => {
    const target = c.url ?? c.webAppUrl ?? (c.data && !text.includes(c.data) ? c.data : undefined);
    return `${i + 1}. ${c.label}${target ? ` ${target}` : ''}`;
  });
  return `${text}\n\n${lines.join('\n')}`;
}
