import { HTTP_SECTION_HEADING, pairRateRatio, ratio, roundsSpread, withHttpResults } from './http-report.js';

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

describe('roundsSpread', () => {
  it('gives the mean of the rounds and its standard error (the sample deviation over the square root of the count)', () => {
    // Mean 1.05; deviations -0.05, 0.05, -0.15, 0.15: sample variance 0.05 / 3, standard error sqrt(0.05 / 12) = 0.0645.
    expect(roundsSpread([1.0, 1.1, 0.9, 1.2])).toBe('; mean of the rounds 1.05x, standard error 0.06');
  });

  it('says nothing of fewer than three rounds, too few for a spread', () => {
    expect(roundsSpread([1.0, 1.2])).toBe('');
    expect(roundsSpread([])).toBe('');
  });

  it('gives no spread where every round agrees', () => {
    expect(roundsSpread([1.07, 1.07, 1.07])).toBe('; mean of the rounds 1.07x, standard error 0.00');
  });
});

describe('pairRateRatio', () => {
  it('gives the pairs against the spends rounded down to thousandths, where the other ratios round down to hundredths', () => {
    expect(pairRateRatio(499, 1000)).toBe('0.499x');
    expect(ratio(499, 1000)).toBe('0.49x');
    expect(pairRateRatio(1, 3)).toBe('0.333x');
    // Never up to the bar: 0.4996x is not 0.500x.
    expect(pairRateRatio(4996, 10000)).toBe('0.499x');
    expect(pairRateRatio(2, 3)).toBe('0.666x');
  });
});
