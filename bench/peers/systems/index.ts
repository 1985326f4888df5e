/** The systems the harness knows, loaded on demand so a process imports only the one it runs. */

import type { System } from './system.js';

export const SYSTEM_NAMES = ['batchline', 'pg-boss', 'graphile-worker', 'bullmq', 'bullmq-postgres'] as const;
export type SystemName = (typeof SYSTEM_NAMES)[number];

/** Loads a system's adapter by name. */
export async function loadSystem(name: string): Promise<System> {
  switch (name) {
    case 'batchline':
      return (await import('./batchline.js')).batchline;
    case 'pg-boss':
      return (await import('./pg-boss.js')).pgBoss;
    case 'graphile-worker':
      return (await import('./graphile-worker.js')).graphileWorker;
    case 'bullmq':
      return (await import('./bullmq.js')).bullmqRedis;
    case 'bullmq-postgres':
      return (await import('./bullmq.js')).bullmqPostgres;
    default:
      throw new Error(`unknown system ${JSON.stringify(name)}; known: ${SYSTEM_NAMES.join(', ')}`);
  }
}
