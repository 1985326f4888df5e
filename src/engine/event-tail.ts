/**
 * Follows the events table from "now" and hands each new event to a callback, once, in the
 * order events became visible: the stream behind `bl.on('batch:completed', …)`. Events of every process arrive,
 * because they are read from the store, not from this process's memory. PostgreSQL
 * notifications cut the wait; otherwise it polls every `pollMs`. A listener that throws is
 * logged and does not stop the stream.
 *
 * States: stopped → running → stopped.
 */

import type { Logger } from 'pino';
import type { BatchEvent } from '../core/types.js';
import type { Store } from '../store/store.js';
import { Wakeup } from './wakeup.js';

/** Follows the events table and hands each event to a callback once. */
export class EventTail {
  private running = false;
  private loop: Promise<void> | null = null;
  private readonly wakeup = new Wakeup();
  private unsubscribe: (() => Promise<void>) | null = null;

  constructor(
    private readonly store: Store,
    private readonly logger: Logger,
    private readonly onEvent: (event: BatchEvent) => void,
    private readonly pollMs = 250,
  ) {}

  /** Takes the cursor of now and starts following; rejects (and stays stopped) if the store fails. */
  async start(): Promise<void> {
    if (this.running) return;
    const cursor = await this.store.eventsCursor();
    this.unsubscribe = await this.store.subscribe(() => this.wakeup.wake());
    this.running = true;
    this.loop = this.follow(cursor);
  }

  /** Reads now rather than at the next poll (a local commit just wrote events). */
  poke(): void {
    this.wakeup.wake();
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.wakeup.wake();
    await this.loop;
    await this.unsubscribe?.();
  }

  private async follow(cursor: string): Promise<void> {
    while (this.running) {
      try {
        const { events, cursor: next } = await this.store.eventsFollow({ after: cursor, limit: 500 });
        for (const event of events) {
          cursor = event.cursor;
          try {
            this.onEvent(event);
          } catch (error) {
            this.logger.error({ err: error, event: event.type }, 'an event listener threw');
          }
        }
        cursor = next;
        if (events.length === 500) continue;
      } catch (error) {
        this.logger.warn({ err: error }, 'reading events failed; retrying');
      }
      await this.wakeup.wait(this.pollMs);
    }
  }
}
