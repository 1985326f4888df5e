/**
 * Retry delays: exponential backoff with "equal jitter" — half of the exponential delay is
 * fixed and half random, so retries of many items that failed together (a provider outage)
 * spread out instead of returning as one wave, while no retry comes back almost at once.
 */

/** How a batch spaces the retries of a transiently failed item. */
export interface BackoffOptions {
  /** Delay before the second attempt, in ms; it doubles each attempt. */
  baseMs: number;
  /** Upper bound of any one delay, in ms. */
  maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 1_000, maxMs: 5 * 60_000 };

/**
 * Delay before the next attempt after attempt number `attempt` (1-based) failed.
 * `random` is injectable so tests can pin the jitter.
 */
export function backoffDelay(attempt: number, options: BackoffOptions, random: () => number = Math.random): number {
  const exponent = Math.min(Math.max(attempt - 1, 0), 30);
  const ceiling = Math.min(options.maxMs, options.baseMs * 2 ** exponent);
  const half = ceiling / 2;
  return Math.round(half + random() * half);
}
