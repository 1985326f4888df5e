/**
 * The PostgreSQL store's wake-ups: one connection LISTENs on the schema's `work` and `control`
 * channels for every subscriber in this process. If it drops, it reopens after a second; the
 * workers' polling covers the gap, so a lost notification only delays work.
 */

import pg from 'pg';
import type { PgConnection } from './connection.js';

/** LISTEN/NOTIFY subscriptions over one connection, opened with the first subscriber. */
export class PgNotifications {
  private readonly subscribers = new Set<(topic: 'work' | 'control') => void>();
  private client: pg.Client | null = null;
  private closed = false;

  constructor(
    private readonly url: string,
    private readonly c: PgConnection,
  ) {}

  /** Calls `onWake` with each notification's topic until the returned function unsubscribes. */
  async subscribe(onWake: (topic: 'work' | 'control') => void): Promise<() => Promise<void>> {
    this.subscribers.add(onWake);
    try {
      if (!this.client) await this.listen();
    } catch (error) {
      // The caller gets no handle to unsubscribe with, so it must not stay subscribed (the
      // listener would keep reopening for it).
      this.subscribers.delete(onWake);
      throw error;
    }
    return async () => {
      this.subscribers.delete(onWake);
      if (this.subscribers.size === 0 && this.client) {
        const client = this.client;
        this.client = null;
        await client.end().catch(() => {});
      }
    };
  }

  /** Opens the LISTEN connection; if it drops, reopens it after a second (polling covers the gap). */
  private async listen(): Promise<void> {
    const client = new pg.Client({ connectionString: this.url });
    this.client = client;
    const reconnect = () => {
      if (this.client !== client) return;
      this.client = null;
      client.end().catch(() => {});
      if (this.closed || this.subscribers.size === 0) return;
      setTimeout(() => {
        if (!this.client && !this.closed && this.subscribers.size > 0) void this.listen().catch(() => {});
      }, 1_000).unref();
    };
    client.on('error', reconnect);
    client.on('end', reconnect);
    client.on('notification', (message) => {
      const topic = message.payload === 'control' ? 'control' : 'work';
      for (const listener of this.subscribers) listener(topic);
    });
    try {
      await client.connect();
      await client.query(`LISTEN "${this.c.schema}_work"`);
      await client.query(`LISTEN "${this.c.schema}_control"`);
    } catch (error) {
      reconnect();
      throw this.c.translate(error);
    }
  }

  /** Closes the connection; no subscription opens it again. */
  async close(): Promise<void> {
    this.closed = true;
    const client = this.client;
    this.client = null;
    await client?.end().catch(() => {});
  }
}
