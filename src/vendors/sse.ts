/**
 * A small, allocation-light Server-Sent Events parser (WHATWG event-stream rules: `event:`,
 * `data:` (multi-line joined by \n), comments, CR/LF/CRLF line ends, a blank line dispatches).
 */
export interface SseEvent {
  event: string;
  data: string;
}

export async function* parseSse(source: AsyncIterable<Uint8Array | string>): AsyncGenerator<SseEvent> {
  const decoder = new TextDecoder();
  let buf = '';
  let event = '';
  let data: string[] = [];
  const flushLine = (line: string): SseEvent | undefined => {
    if (line === '') {
      if (data.length === 0) {
        event = '';
        return undefined;
      }
      const ev = { event: event || 'message', data: data.length === 1 ? data[0]! : data.join('\n') };
      event = '';
      data = [];
      return ev;
    }
    if (line.charCodeAt(0) === 58 /* : */) return undefined;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.charCodeAt(0) === 32) value = value.slice(1);
    if (field === 'data') data.push(value);
    else if (field === 'event') event = value;
    return undefined;
  };
  for await (const chunk of source) {
    buf += typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true });
    let start = 0;
    for (;;) {
      let i = start;
      const n = buf.length;
      while (i < n) {
        const c = buf.charCodeAt(i);
        if (c === 10 || c === 13) break;
        i++;
      }
      if (i >= n) break;
      // A lone CR at the end of the buffer may be half of CRLF: wait for more.
      if (buf.charCodeAt(i) === 13 && i + 1 >= n) break;
      const line = buf.slice(start, i);
      start = i + (buf.charCodeAt(i) === 13 && buf.charCodeAt(i + 1) === 10 ? 2 : 1);
      const ev = flushLine(line);
      if (ev) yield ev;
    }
    buf = start > 0 ? buf.slice(start) : buf;
  }
  buf += decoder.decode();
  if (buf.length) {
    for (const line of buf.split(/\r\n|\r|\n/)) {
      const ev = flushLine(line);
      if (ev) yield ev;
    }
  }
  const last = flushLine('');
  if (last) yield last;
}
