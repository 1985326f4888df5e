import { expect, it } from 'vitest';
import { describe as describeProgress, ProgressReporter, type BatchCounters } from './progress.js';

it('shows the rate of items finished since it began watching, not of every item the batch ever finished', async () => {
  // Watching starts late: 2,500 of 3,000 items are done, and then 10 more finish per read.
  let reads = 0;
  const read = async (): Promise<BatchCounters> => ({ total: 3_000, remaining: 500 - 10 * reads++, failed: 0 });
  const lines: string[] = [];
  const stream = { isTTY: true, write: (text: string) => lines.push(text) } as unknown as NodeJS.WriteStream;
  const progress = new ProgressReporter(read, ['b'], { stream, label: 'waiting' });
  progress.start();
  while (lines.length < 4) await new Promise((resolve) => setTimeout(resolve, 50));
  await progress.stop();
  // The first view has no rate yet; later ones count 10 items a read (every 250 ms), about 40/s.
  expect(lines[0]).toBe('\r\x1b[Kwaiting: 2,500/3,000 items (83%), 0 failed, 0/1 batches done');
  const rates = lines.slice(1, 4).map((line) => Number(/, ([\d,]+) items\/s/.exec(line)![1]!.replace(/,/g, '')));
  for (const rate of rates) expect(rate).toBeGreaterThan(0);
  for (const rate of rates) expect(rate).toBeLessThan(100);
});

it('describes counters with and without a rate', () => {
  const batches = [
    { total: 10, remaining: 0, failed: 1 },
    { total: 90_000, remaining: 45_000, failed: 0 },
  ];
  expect(describeProgress(batches, 12_345.4, 'txn.apply')).toBe('txn.apply: 45,010/90,010 items (50%), 1 failed, 12,345 items/s, 1/2 batches done');
  expect(describeProgress(batches, null)).toBe('progress: 45,010/90,010 items (50%), 1 failed, 1/2 batches done');
});
