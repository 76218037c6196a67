/**
 * Text shaping for Telegram: HTML escaping, a small Markdown → Telegram-HTML converter for
 * model answers (code fences, inline code, bold, italic, strike, links, headings), and the
 * check for Telegram's "can't parse entities" refusal so callers can fall back to plain text.
 */

export function escapeHtml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function escapeAttr(s: string): string {
  return escapeHtml(s).replace(/"/g, '&quot;');
}

/** Inline Markdown (outside code fences) → Telegram HTML. Unmatched markers stay literal. */
function inline(src: string): string {
  // Split out inline code first: nothing inside it is formatted.
  const out: string[] = [];
  const re = /`([^`\n]+)`/g;
  let last = 0;
  for (let m = re.exec(src); m; m = re.exec(src)) {
    out.push(spans(src.slice(last, m.index)), `<code>${escapeHtml(m[1])}</code>`);
    last = m.index + m[0].length;
  }
  out.push(spans(src.slice(last)));
  return out.join('');
}

function spans(raw: string): string {
  let s = escapeHtml(raw);
  // Links [text](http...) — text already escaped; the URL gets attribute escaping.
  s = s.replace(/\[([^\]\n]+)\]\((https?:\/\/[^\s)]+)\)/g, (_m, text: string, url: string) => `<a href="${escapeAttr(url.replace(/&amp;/g, '&'))}">${text}</a>`);
  s = s.replace(/\*\*([^*\n]+?)\*\*/g, '<b>$1</b>');
  s = s.replace(/__([^_\n]+?)__/g, '<b>$1</b>');
  s = s.replace(/~~([^~\n]+?)~~/g, '<s>$1</s>');
  s = s.replace(/(^|[\s(])\*([^*\s][^*\n]*?)\*(?=[\s).,!?:;]|$)/g, '$1<i>$2</i>');
  s = s.replace(/(^|[\s(])_([^_\s][^_\n]*?)_(?=[\s).,!?:;]|$)/g, '$1<i>$2</i>');
  return s;
}

/**
 * Markdown as models write it → Telegram HTML (parse_mode HTML). Works on partial text
 * while streaming: an unclosed ``` fence renders as code to the end.
 */
export function markdownToHtml(md: string): string {
  const lines = md.split('\n');
  const out: string[] = [];
  let inFence = false;
  let fenceLang = '';
  let code: string[] = [];
  const closeFence = () => {
    const cls = fenceLang ? ` class="language-${escapeAttr(fenceLang)}"` : '';
    out.push(`<pre><code${cls}>${escapeHtml(code.join('\n'))}</code></pre>`);
    code = [];
  };
  for (const line of lines) {
    const fence = /^\s*```\s*([\w+#.-]*)\s*$/.exec(line);
    if (fence) {
      if (inFence) {
        closeFence();
        inFence = false;
      } else {
        inFence = true;
        fenceLang = fence[1] ?? '';
      }
      continue;
    }
    if (inFence) {
      code.push(line);
      continue;
    }
    const h = /^#{1,6}\s+(.*)$/.exec(line);
    if (h) {
      out.push(`<b>${inline(h[1])}</b>`);
      continue;
    }
    const bullet = /^(\s*)[-*+]\s+(.*)$/.exec(line);
    if (bullet) {
      out.push(`${bullet[1]}• ${inline(bullet[2])}`);
      continue;
    }
    out.push(inline(line));
  }
  if (inFence) closeFence();
  return out.join('\n');
}

/** Telegram's 400 for markup it cannot parse. */
export function isParseError(e: unknown): boolean {
  const err = e as { error_code?: number; description?: string; message?: string };
  const text = `${err?.description ?? ''} ${err?.message ?? ''}`;
  return (err?.error_code === 400 || /\b400\b/.test(text)) && /can't parse|parse entities|unsupported start tag|can't find end/i.test(text);
}

/** Telegram's 400 when an edit would not change anything. */
export function isNotModified(e: unknown): boolean {
  const err = e as { description?: string; message?: string };
  return /message is not modified/i.test(`${err?.description ?? ''} ${err?.message ?? ''}`);
}
