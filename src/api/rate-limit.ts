/**
 * Per-caller request rate limit: a token bucket per API key (per client address when the
 * API runs without keys). A caller over its rate gets 429 with `Retry-After`.
 */

export interface RateLimitOptions {
  /** Sustained requests per second per caller. */
  perSecond: number;
  /** Requests a caller may make at once after being idle. */
  burst: number;
}

export const DEFAULT_RATE_LIMIT: RateLimitOptions = { perSecond: 100, burst: 200 };

/** Token buckets by caller; idle buckets are dropped so the map stays small. */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(private readonly options: RateLimitOptions) {}

  /**
   * Takes a token for `caller`: 0 when allowed, otherwise the seconds to wait. Time is the
   * monotonic clock, so a wall clock stepped back does not hold every caller off.
   */
  take(caller: string, now = performance.now()): number {
    const { perSecond, burst } = this.options;
    const bucket = this.buckets.get(caller) ?? { tokens: burst, at: now };
    bucket.tokens = Math.min(burst, bucket.tokens + ((now - bucket.at) / 1000) * perSecond);
    bucket.at = now;
    this.buckets.set(caller, bucket);
    if (this.buckets.size > 10_000) this.prune(now);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - bucket.tokens) / perSecond));
  }

  private prune(now: number): void {
    const full = (this.options.burst / this.options.perSecond) * 1000;
    for (const [caller, bucket] of this.buckets) if (now - bucket.at > full) this.buckets.delete(caller);
  }
}
