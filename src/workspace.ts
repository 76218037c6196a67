/**
 * Workspace ids, in one place: what they look like, how channels build them, and how the
 * file store names their folders (and reads the names back).
 *
 *   local              the shell channel and the CLI's default
 *   tg:<user id>       a Telegram user            tg:group:<chat id>  a Telegram group
 *   wx:<contact id>    a WeChat contact (also wx:room-<room id> for a room's chat state)
 *   <name>             an operator-chosen name: lowercase letters, digits and dashes
 *
 * Nothing in an id can escape a folder: no `/`, no `..`.
 */
export const WORKSPACE_RE = /^(local|tg:-?\d{1,20}|tg:group:-?\d{1,20}|wx:[A-Za-z0-9@._-]{1,128}|[a-z][a-z0-9-]{0,63})$/;

/** The store's own scope (master-key record, shared state); never a workspace. */
export const SYSTEM_SCOPE = '_system';

export function isValidWorkspace(ws: string): boolean {
  return typeof ws === 'string' && WORKSPACE_RE.test(ws) && !ws.includes('..');
}

export type WorkspaceParts =
  | { kind: 'local' }
  | { kind: 'telegram'; userId: string }
  | { kind: 'telegram-group'; chatId: string }
  | { kind: 'wechat'; id: string }
  | { kind: 'named'; name: string };

/** The parts of a valid id; undefined for anything else. */
export function parseWorkspace(ws: string): WorkspaceParts | undefined {
  if (!isValidWorkspace(ws)) return undefined;
  if (ws === 'local') return { kind: 'local' };
  if (ws.startsWith('tg:group:')) return { kind: 'telegram-group', chatId: ws.slice('tg:group:'.length) };
  if (ws.startsWith('tg:')) return { kind: 'telegram', userId: ws.slice(3) };
  if (ws.startsWith('wx:')) return { kind: 'wechat', id: ws.slice(3) };
  return { kind: 'named', name: ws };
}

export function formatWorkspace(p: WorkspaceParts): string {
  switch (p.kind) {
    case 'local':
      return 'local';
    case 'telegram':
      return `tg:${p.userId}`;
    case 'telegram-group':
      return `tg:group:${p.chatId}`;
    case 'wechat':
      return `wx:${p.id}`;
    case 'named':
      return p.name;
  }
}

/**
 * The folder name of a workspace in the file store. Colons are not portable in file names,
 * so each becomes `_`. This is the long-standing layout; it reads back unambiguously
 * because a Telegram id is digits only and a WeChat id never holds a colon (see below).
 */
export function workspaceDirName(ws: string): string {
  return ws.replace(/:/g, '_');
}

/**
 * The workspace a store folder belongs to; undefined for a folder that is not one. Only
 * `tg_group_` means a Telegram group: a WeChat id may itself start with `group_`
 * (`wx:group_abc` is a legal contact id and must come back as itself, not `wx:group:abc`).
 */
export function workspaceFromDirName(dir: string): string | undefined {
  if (dir === SYSTEM_SCOPE) return SYSTEM_SCOPE;
  let ws: string;
  if (dir.startsWith('tg_group_')) ws = `tg:group:${dir.slice('tg_group_'.length)}`;
  else if (dir.startsWith('tg_')) ws = `tg:${dir.slice(3)}`;
  else if (dir.startsWith('wx_')) ws = `wx:${dir.slice(3)}`;
  else ws = dir;
  return isValidWorkspace(ws) && workspaceDirName(ws) === dir ? ws : undefined;
}
