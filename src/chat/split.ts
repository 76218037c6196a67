/**
 * Splits a long reply into messages of at most `max` characters, preferring paragraph,
 * then line, then sentence/space boundaries. A split inside a ``` code block closes the
 * fence in this part and reopens it (with its language) at the start of the next one, so
 * each part renders on its own.
 */
export function splitMessage(text: string, max: number): string[] {
  if (max < 64) throw new RangeError('max must be at least 64');
  const parts: string[] = [];
  let rest = text;
  let prefix = '';
  while (rest.length > 0) {
    if (prefix.length + rest.length <= max) {
      parts.push(prefix + rest);
      break;
    }
    const window = rest.slice(0, max - prefix.length - 4); // keep room for "\n```"
    let cut = lastBoundary(window);
    if (cut <= 0) cut = window.length;
    let head = prefix + rest.slice(0, cut);
    rest = rest.slice(cut).replace(/^\n+/, '');
    const lang = openFenceLang(head);
    if (lang !== undefined) {
      head = head.replace(/\n*$/, '') + '\n```';
      prefix = '```' + lang + '\n';
    } else {
      prefix = '';
    }
    parts.push(head);
  }
  return parts.map((p) => p.replace(/\s+$/, '')).filter((p) => p.length > 0);
}

function lastBoundary(window: string): number {
  const min = Math.floor(window.length * 0.5);
  for (const sep of ['\n\n', '\n', '. ', '。', ' ']) {
    const i = window.lastIndexOf(sep);
    if (i >= min) return i + sep.length;
  }
  return -1;
}

/** The language of a ``` fence left open at the end of `text`, or undefined when all are closed. */
function openFenceLang(text: string): string | undefined {
  let open: string | undefined;
  for (const m of text.matchAll(/^```([^\n`]*)$/gm)) open = open === undefined ? m[1].trim() : undefined;
  return open;
}
