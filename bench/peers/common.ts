/**
 * Small helpers shared by the peer adapters in this folder: the result shape, the job payloads,
 * batching, a completion counter that settles when N distinct jobs are done, and reading a
 * peer's installed version. Nothing here touches a peer library.
 */

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

/** What every peer adapter returns. */
export interface PeerResult {
  /** The peer's package name. */
  name: string;
  /** The peer's installed version (from its package.json). */
  version: string;
  /** Wall time in ms from the first enqueue call until the last job was recorded as done. */
  ms: number;
  /** Jobs verified as completed (always equal to the jobs requested, or the adapter throws). */
  jobs: number;
  /** Of `ms`, the time until the last bulk-enqueue call returned (processing overlaps it). */
  enqueueMs: number;
}

/** Jobs per bulk-enqueue call, unless an adapter is told otherwise. */
export const DEFAULT_ENQUEUE_BATCH = 1000;

/** Longest a run may take before the adapter gives up and throws. */
export const DEFAULT_TIMEOUT_MS = 10 * 60_000;

/** The handler every peer runs: it does nothing. */
export async function noop(): Promise<void> {}

/** The payloads, built before the clock starts as the Batchline scenario does: `{ i }` for i in 0..n-1. */
export function payloads(n: number): Array<{ i: number }> {
  return Array.from({ length: n }, (_, i) => ({ i }));
}

/** Consecutive slices of at most `size` elements. */
export function* batches<T>(items: readonly T[], size: number): Generator<T[]> {
  if (!Number.isInteger(size) || size < 1) throw new Error(`batch size must be a positive integer, got ${size}`);
  for (let at = 0; at < items.length; at += size) yield items.slice(at, at + size);
}

/** The installed version of a package, read from its package.json. */
export function installedVersion(pkg: string): string {
  const require = createRequire(import.meta.url);
  // Resolve the package's main entry, then walk up to its package.json (some packages do not
  // export ./package.json).
  let dir = require.resolve(pkg);
  for (;;) {
    const parent = dir.slice(0, dir.lastIndexOf('/'));
    if (parent === dir || parent === '') throw new Error(`no package.json found for ${pkg}`);
    dir = parent;
    try {
      const json = JSON.parse(readFileSync(`${dir}/package.json`, 'utf8')) as { name?: string; version?: string };
      if (json.name === pkg && json.version) return json.version;
    } catch {
      // not here; keep walking up
    }
  }
}

/** Throws unless `name` is a plain lower-case SQL identifier (schemas are interpolated into SQL). */
export function assertIdentifier(name: string): void {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) throw new Error(`unsafe schema name: ${JSON.stringify(name)}`);
}

/**
 * Counts distinct completed job ids and settles once `target` of them are in, or rejects on the
 * first failure or when `timeoutMs` passes.
 */
export class CompletionCounter {
  private readonly seen = new Set<string>();
  private resolveDone!: () => void;
  private rejectDone!: (err: Error) => void;
  private readonly timer: NodeJS.Timeout;
  /** Settles when `target` distinct jobs are done. */
  readonly done: Promise<void>;

  constructor(
    private readonly target: number,
    timeoutMs: number,
    what: string,
  ) {
    this.done = new Promise<void>((resolve, reject) => {
      this.resolveDone = resolve;
      this.rejectDone = reject;
    });
    // Callers may not be awaiting yet when a failure arrives; keep Node from reporting it early.
    this.done.catch(() => {});
    this.timer = setTimeout(
      () => this.fail(new Error(`${what}: only ${this.seen.size} of ${target} jobs completed within ${timeoutMs} ms`)),
      timeoutMs,
    );
    if (target === 0) this.finish();
  }

  /** Records one completed job. */
  add(id: string): void {
    this.seen.add(id);
    if (this.seen.size === this.target) this.finish();
  }

  /** Distinct jobs completed so far. */
  get count(): number {
    return this.seen.size;
  }

  /** Rejects `done` (the first failure wins). */
  fail(err: Error): void {
    clearTimeout(this.timer);
    this.rejectDone(err);
  }

  /** Stops the timeout without settling (for cleanup paths). */
  dispose(): void {
    clearTimeout(this.timer);
  }

  private finish(): void {
    clearTimeout(this.timer);
    this.resolveDone();
  }
}
