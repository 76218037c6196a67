/**
 * Advice must point to commands that exist (issue 12, dead end 6): every `/byok <sub>` the
 * catalogues mention is a subcommand the chat router handles, and every `byok <cmd>` a
 * command of the CLI. The router's subcommands are read from its `/byok` switch.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { commands } from '../../src/cli.ts';
import { en } from '../../src/i18n/en.ts';
import { zh } from '../../src/i18n/zh.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');

/** The `case '…':` labels of ChatRouter.byok (the `/byok` subcommands). */
function routerSubcommands(): Set<string> {
  const src = fs.readFileSync(path.join(ROOT, 'src/chat/router.ts'), 'utf8');
  const start = src.indexOf('private async byok(');
  expect(start, 'ChatRouter.byok not found').toBeGreaterThan(0);
  const end = src.indexOf('\n  }\n', start);
  const body = src.slice(start, end);
  return new Set([...body.matchAll(/case '([a-z-]+)':/g)].map((m) => m[1]!));
}

/** Words after "byok" that are prose ("Unknown /byok command"), not a command. */
const PROSE = new Set(['command', 'commands']);

function mentions(text: string): { chat: string[]; cli: string[] } {
  const words = (re: RegExp) => [...text.matchAll(re)].map((m) => m[1]!).filter((w) => !PROSE.has(w));
  return {
    chat: words(/\/byok\s+([a-z][a-z-]*)/g),
    // `byok <cmd>` without the slash (not byok-bot, not /byok).
    cli: words(/(?<![/\w-])byok\s+([a-z][a-z-]*)/g),
  };
}

describe('advice in the catalogues points to commands that exist', () => {
  const subs = routerSubcommands();
  const cli = new Set(Object.keys(commands));

  it('reads the lists it checks against', () => {
    for (const s of ['add', 'list', 'key', 'test', 'edit', 'remove', 'example', 'confirm', 'cancel']) expect(subs).toContain(s);
    for (const c of ['add', 'list', 'update', 'test', 'templates']) expect(cli).toContain(c);
  });

  for (const [lang, cat] of [['en', en], ['zh', zh]] as const) {
    it(`every /byok <sub> and byok <cmd> in ${lang}.ts exists`, () => {
      const bad: string[] = [];
      let seen = 0;
      for (const [key, text] of Object.entries(cat)) {
        const m = mentions(String(text));
        seen += m.chat.length + m.cli.length;
        for (const s of m.chat) if (!subs.has(s)) bad.push(`${key}: /byok ${s}`);
        for (const c of m.cli) if (!cli.has(c)) bad.push(`${key}: byok ${c}`);
      }
      expect(seen).toBeGreaterThan(30);
      expect(bad).toEqual([]);
    });
  }

  it('the registry\'s advice for capabilities and pricing names real commands', () => {
    const src = fs.readFileSync(path.join(ROOT, 'src/registry/add.ts'), 'utf8');
    expect(src).not.toMatch(/adjust them with update\b/);
    const m = mentions(src.match(/curated list: capabilities default[^`]*/)![0]);
    expect(m.chat.length + m.cli.length).toBeGreaterThan(0);
    for (const s of m.chat) expect(subs).toContain(s);
    for (const c of m.cli) expect(cli).toContain(c);
  });
});
