import { describe, expect, it } from 'vitest';
import { markdownToPlain, splitParagraphs } from '../../src/chat/markdown.ts';

describe('Markdown → plain text for WeChat', () => {
  it('headings, emphasis, lists, links, quotes, rules and tables read as plain text', () => {
    const md = [
      '# 标题',
      '## Second *level* ##',
      '这是 **重要** 的、__也重要__、*斜体*、~~删除~~ 与 `npm install`。',
      '看 [文档](https://example.com/docs) 或 <https://x.y/z>，图 ![图](https://i.png)',
      '- 一',
      '  * 二',
      '+ [x] 完成',
      '3) 第三',
      '> 引用',
      '---',
      '| 名称 | 值 |',
      '|:-----|---:|',
      '| a | 1 |',
    ].join('\n');
    expect(markdownToPlain(md).split('\n')).toEqual([
      '【标题】',
      '【Second level】',
      '这是 重要 的、也重要、斜体、删除 与 npm install。',
      '看 文档 (https://example.com/docs) 或 https://x.y/z，图 图 (https://i.png)',
      '• 一',
      '  • 二',
      '• ☑ 完成',
      '3. 第三',
      '｜引用',
      '————',
      '名称 | 值',
      'a | 1',
    ]);
  });

  it('keeps code blocks verbatim as indented text, markup inside untouched', () => {
    const md = 'Run:\n\n```python\ndef f(a_b, c_d):\n    return a_b * c_d  # **not bold**\n```\n\nDone.';
    expect(markdownToPlain(md)).toBe('Run:\n\n    def f(a_b, c_d):\n        return a_b * c_d  # **not bold**\n\nDone.');
  });

  it('leaves ordinary text alone: snake_case, arithmetic, lone asterisks, escapes', () => {
    expect(markdownToPlain('use snake_case_name and 2 * 3 * 4 = 24, a*b')).toBe('use snake_case_name and 2 * 3 * 4 = 24, a*b');
    expect(markdownToPlain('price \\*not emphasis\\*')).toBe('price *not emphasis*');
    expect(markdownToPlain('你好，世界。')).toBe('你好，世界。');
  });

  it('splits at paragraph boundaries, packing whole paragraphs; a long paragraph at a sentence end', () => {
    const p = (c: string, n: number) => c.repeat(n);
    const parts = splitParagraphs(`${p('a', 40)}\n\n${p('b', 40)}\n\n${p('c', 40)}`, 90);
    expect(parts).toEqual([`${p('a', 40)}\n\n${p('b', 40)}`, p('c', 40)]);
    const long = `${p('长', 60)}。${p('句', 60)}。`;
    const cut = splitParagraphs(long, 80);
    expect(cut).toEqual([`${p('长', 60)}。`, `${p('句', 60)}。`]);
    for (const part of splitParagraphs(p('x', 500), 100)) expect(part.length).toBeLessThanOrEqual(100);
  });
});
