/**
 * Markdown → readable plain text, for channels that show text as typed (WeChat). Models
 * answer in Markdown; WeChat would show `##`, `**` and code fences literally. Headings become
 * 【title】 lines, emphasis markers go, lists get bullets, code blocks stay verbatim but
 * indented, links read "text (url)", tables become rows of cells.
 */
export function markdownToPlain(md: string): string {
  const lines = md.replace(/\r\n?/g, '\n').split('\n');
  const out: string[] = [];
  let fence: { marker: string; indent: string } | undefined;
  for (const line of lines) {
    if (fence) {
      if (line.trim().startsWith(fence.marker) && /^\s*(`{3,}|~{3,})\s*$/.test(line)) {
        fence = undefined;
        continue;
      }
      out.push(line.trim() ? `    ${line.startsWith(fence.indent) ? line.slice(fence.indent.length) : line}` : '');
      continue;
    }
    const open = /^(\s*)(`{3,}|~{3,})\s*([\w+#.-]*)/.exec(line);
    if (open) {
      fence = { marker: open[2], indent: open[1] };
      continue;
    }
    out.push(blockLine(line));
  }
  return collapseBlankLines(out.filter((l): l is string => l !== null).join('\n')).trim();
}

function blockLine(line: string): string {
  // Horizontal rule.
  if (/^\s{0,3}([-*_])(\s*\1){2,}\s*$/.test(line)) return '————';
  // Table separator row (|---|:---:|).
  if (/^\s*\|?(\s*:?-{3,}:?\s*\|)+\s*:?-{0,}:?\s*\|?\s*$/.test(line) && line.includes('-')) return '\u0000';
  const heading = /^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
  if (heading) return `【${inline(heading[1])}】`;
  const quote = /^\s{0,3}>\s?(.*)$/.exec(line);
  if (quote) return `｜${inline(quote[1])}`;
  const bullet = /^(\s*)[-*+]\s+(?:\[( |x|X)\]\s+)?(.*)$/.exec(line);
  if (bullet) {
    const depth = Math.floor(bullet[1].replace(/\t/g, '  ').length / 2);
    const box = bullet[2] === undefined ? '' : bullet[2] === ' ' ? '☐ ' : '☑ ';
    return `${'  '.repeat(depth)}• ${box}${inline(bullet[3])}`;
  }
  const ordered = /^(\s*)(\d{1,3})[.)]\s+(.*)$/.exec(line);
  if (ordered) {
    const depth = Math.floor(ordered[1].replace(/\t/g, '  ').length / 2);
    return `${'  '.repeat(depth)}${ordered[2]}. ${inline(ordered[3])}`;
  }
  if (/^\s*\|.*\|\s*$/.test(line)) {
    const cells = line.trim().replace(/^\||\|$/g, '').split('|').map((c) => inline(c.trim()));
    return cells.join(' | ');
  }
  return inline(line);
}

/** Inline markup: code spans kept verbatim, links, emphasis, strike-through, escapes. */
function inline(text: string): string {
  const codes: string[] = [];
  let s = text.replace(/(`+)([^`]|[^`][\s\S]*?[^`])\1(?!`)/g, (_m, _t, code: string) => {
    codes.push(code.trim());
    return `\u0001${codes.length - 1}\u0001`;
  });
  s = s
    .replace(/!\[([^\]]*)\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g, (_m, alt: string, url: string) => (alt ? `${alt} (${url})` : url))
    .replace(/\[([^\]]+)\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g, (_m, label: string, url: string) => (label === url ? url : `${label} (${url})`))
    .replace(/<(https?:\/\/[^>\s]+)>/g, '$1')
    .replace(/(\*\*|__)(?=\S)([\s\S]*?\S)\1/g, '$2')
    .replace(/~~(?=\S)([\s\S]*?\S)~~/g, '$1')
    .replace(/(^|[^\w*\\])\*(?=[^\s*])([^*\n]*?[^\s*\\])\*(?![\w*])/g, '$1$2')
    .replace(/(^|[^\w\\])_(?=[^\s_])([^_\n]*?[^\s_\\])_(?!\w)/g, '$1$2')
    .replace(/\\([\\`*_{}[\]()#+\-.!|>~])/g, '$1');
  return s.replace(/\u0001(\d+)\u0001/g, (_m, i: string) => codes[Number(i)]);
}

function collapseBlankLines(s: string): string {
  return s
    .split('\n')
    .filter((l) => l !== '\u0000')
    .join('\n')
    .replace(/[ \t]+$/gm, '')
    .replace(/\n{3,}/g, '\n\n');
}

/**
 * Splits plain text into messages of at most `max` characters at paragraph boundaries:
 * whole paragraphs are packed together; a paragraph longer than `max` is cut at its last
 * line break, else sentence end or space, inside the window.
 */
export function splitParagraphs(text: string, max: number): string[] {
  const parts: string[] = [];
  let cur = '';
  const push = () => {
    if (cur.trim()) parts.push(cur.replace(/\s+$/, ''));
    cur = '';
  };
  for (const para of text.split(/\n{2,}/)) {
    if (!para.trim()) continue;
    const joined = cur ? `${cur}\n\n${para}` : para;
    if (joined.length <= max) {
      cur = joined;
      continue;
    }
    push();
    let rest = para;
    while (rest.length > max) {
      const window = rest.slice(0, max);
      let cut = -1;
      for (const sep of ['\n', '。', '. ', '！', '？', '; ', '，', ', ', ' ']) {
        const i = window.lastIndexOf(sep);
        if (i >= max * 0.3) {
          cut = i + sep.length;
          break;
        }
      }
      if (cut <= 0) cut = max;
      parts.push(rest.slice(0, cut).replace(/\s+$/, ''));
      rest = rest.slice(cut).replace(/^\n+/, '');
    }
    cur = rest;
  }
  push();
  return parts;
}
