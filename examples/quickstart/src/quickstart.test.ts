import { describe, expect, it } from 'vitest';
import { runQuickstart } from './quickstart.js';

describe('examples/quickstart', () => {
  it('runs end to end and shows zero-on-first-use, punch-hole zeroing, SIGBUS and full release', () => {
    const lines: string[] = [];
    runQuickstart((l) => lines.push(l));
    const out = lines.join('\n');
    expect(out).toContain('first read of page 0: 00 00 00 00 00 00 00 00');
    expect(out).toContain('after memset 0xaa: aa aa aa aa aa aa aa aa');
    expect(out).toMatch(/page 0: 00 00 00 00 00 00 00 00 {3}page 1: aa aa/);
    expect(out).toContain('EEXIST (errno 17)');
    expect(out).toContain('SIGBUS at file offset 16777216');
    expect(out).toContain('pages [0, 512) shared → private');
    expect(out).toContain('pages [256, 512) private → shared');
    expect(out).toMatch(/0 bytes in use \(peak 4\.0\d* MiB\)|0 bytes in use \(peak 4 MiB\)/);
  });
});
