import { HTTP_SECTION_HEADING, withHttpResults } from './http-report.js';

describe('withHttpResults', () => {
  const other = '# Benchmarks\n\n## Store\n\nstore results\n';

  it('adds the HTTP section with the block at the end of a document that has none', () => {
    expect(withHttpResults(other, 1000, 'run A')).toBe(`${other}\n${HTTP_SECTION_HEADING}\n\n<!-- http-results users=1000:start -->\nrun A\n<!-- http-results users=1000:end -->\n`);
  });

  it('replaces the block of the same account count and nothing else', () => {
    const first = withHttpResults(other, 1000, 'run A');
    const both = withHttpResults(first, 100000, 'run B');
    const replaced = withHttpResults(both, 1000, 'run C');
    expect(replaced).toBe(both.replace('run A', 'run C'));
    expect(replaced).toContain('run B');
  });

  it('puts a new block at the end of the HTTP section, before the next section and after its text', () => {
    const document = `${other}\n${HTTP_SECTION_HEADING}\n\nHow the bench works.\n\n## Later section\n\nlater text\n`;
    expect(withHttpResults(document, 1000, 'run A')).toBe(
      `${other}\n${HTTP_SECTION_HEADING}\n\nHow the bench works.\n\n<!-- http-results users=1000:start -->\nrun A\n<!-- http-results users=1000:end -->\n\n## Later section\n\nlater text\n`,
    );
  });
});
