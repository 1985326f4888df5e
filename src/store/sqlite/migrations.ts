/**
 * Numbered migrations of the embedded SQLite store. Released migrations are never edited:
 * a change is a new number. test/store/schema.test.ts snapshots the resulting schema.
 *
 * Times: public columns (`created_at`, `started_at`, `finished_at`) are ISO-8601 text so a
 * user reading the file with `sqlite3` sees dates; engine bookkeeping (`served_at`,
 * `lease_expires_at`, `run_after`, ...) is integer milliseconds since the epoch.
 */

export interface Migration {
  version: number;
  name: string;
  up: string;
  down: string;
}

export const SQLITE_MIGRATIONS: Migration[] = [
  {
    version: 1,
    name: 'batches, chunks, items view, events, workers, locks',
    up: `
CREATE TABLE batches (
  id              TEXT PRIMARY KEY,
  tenant          TEXT NOT NULL,
  type            TEXT NOT NULL,
  status          TEXT NOT NULL CHECK (status IN ('queued','running','paused','completed','failed','cancelled')),
  priority        INTEGER NOT NULL DEFAULT 0 CHECK (priority BETWEEN 0 AND 10),
  total           INTEGER NOT NULL DEFAULT 0,
  succeeded       INTEGER NOT NULL DEFAULT 0,
  failed          INTEGER NOT NULL DEFAULT 0,
  cancelled       INTEGER NOT NULL DEFAULT 0,
  aggregates      TEXT NOT NULL DEFAULT '{}',
  labels          TEXT NOT NULL DEFAULT '{}',
  idempotency_key TEXT,
  submit_digest   TEXT,
  max_attempts    INTEGER,
  timeout_ms      INTEGER,
  backoff_base_ms INTEGER,
  backoff_max_ms  INTEGER,
  concurrency     INTEGER,
  leased_items    INTEGER NOT NULL DEFAULT 0,
  served_at       INTEGER,
  progress_at     INTEGER,
  created_at      TEXT NOT NULL,
  started_at      TEXT,
  finished_at     TEXT
);
CREATE UNIQUE INDEX batches_idempotency ON batches (tenant, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX batches_runnable ON batches (priority DESC, served_at) WHERE status IN ('queued', 'running');
CREATE INDEX batches_tenant ON batches (tenant, id);
-- The reconciler looks at open and recently finished batches every pass; without these it
-- would scan every batch ever run.
CREATE INDEX batches_open ON batches (id) WHERE status IN ('queued', 'running', 'paused');
CREATE INDEX batches_finished ON batches (finished_at) WHERE finished_at IS NOT NULL;

-- AUTOINCREMENT: ids are never reused after a delete, so a stale worker's commit (fenced by
-- chunk id and lease number) and an event follower's cursor can never hit a newer row.
CREATE TABLE chunks (
  id               INTEGER PRIMARY KEY AUTOINCREMENT,
  batch_id         TEXT NOT NULL REFERENCES batches (id) ON DELETE CASCADE,
  seq0             INTEGER,
  seqs             TEXT,
  skip             INTEGER NOT NULL DEFAULT 0,
  n                INTEGER NOT NULL,
  payloads         TEXT NOT NULL,
  state            TEXT,
  done             INTEGER NOT NULL DEFAULT 0,
  succeeded        INTEGER NOT NULL DEFAULT 0,
  failed           INTEGER NOT NULL DEFAULT 0,
  cancelled        INTEGER NOT NULL DEFAULT 0,
  status           TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending','leased','done','cancelled','failed')),
  attempt          INTEGER NOT NULL DEFAULT 0,
  lease_no         INTEGER NOT NULL DEFAULT 0,
  commit_no        INTEGER NOT NULL DEFAULT 0,
  lease_owner      TEXT,
  lease_expires_at INTEGER,
  run_after        INTEGER NOT NULL DEFAULT 0,
  error            TEXT
);
CREATE INDEX chunks_batch ON chunks (batch_id, id);
CREATE INDEX chunks_pending ON chunks (batch_id, id) WHERE status = 'pending';
CREATE INDEX chunks_leased ON chunks (lease_expires_at) WHERE status = 'leased';

-- One row per item, derived from chunks: mirrors chunkItems() in src/store/chunk-items.ts.
-- Chunks that have outcomes are walked through their state array and chunks that have none
-- through their payloads, so statuses never index into a JSON array (which re-parses it):
-- counting a batch's items by status reads each array once.
CREATE VIEW items AS
SELECT c.batch_id AS batch_id,
       coalesce(c.seq0 + s.key, c.seqs ->> s.key) AS seq,
       coalesce(s.value ->> 's',
                CASE c.status WHEN 'leased' THEN 'running' WHEN 'cancelled' THEN 'cancelled'
                              WHEN 'failed' THEN 'failed' ELSE 'pending' END) AS status,
       coalesce(s.value ->> 'a', c.attempt) AS attempts,
       c.payloads -> s.key AS payload,
       s.value -> 'r' AS result,
       CASE WHEN s.value ->> 's' IS NULL AND c.status = 'failed' THEN c.error ELSE s.value -> 'e' END AS error
  FROM chunks c, json_each(c.state) s
 WHERE c.state IS NOT NULL
   AND s.key >= c.skip
   AND coalesce(s.value ->> 's', '') <> 'moved'
UNION ALL
SELECT c.batch_id,
       coalesce(c.seq0 + p.key, c.seqs ->> p.key),
       CASE c.status WHEN 'leased' THEN 'running' WHEN 'cancelled' THEN 'cancelled'
                     WHEN 'failed' THEN 'failed' ELSE 'pending' END,
       c.attempt,
       c.payloads -> p.key,
       NULL,
       CASE WHEN c.status = 'failed' THEN c.error END
  FROM chunks c, json_each(c.payloads) p
 WHERE c.state IS NULL
   AND p.key >= c.skip;

CREATE TABLE events (
  id         INTEGER PRIMARY KEY AUTOINCREMENT,
  batch_id   TEXT,
  tenant     TEXT,
  type       TEXT NOT NULL,
  data       TEXT NOT NULL DEFAULT '{}',
  created_at TEXT NOT NULL
);
CREATE INDEX events_batch ON events (batch_id, id);

CREATE TABLE workers (
  id           TEXT PRIMARY KEY,
  host         TEXT NOT NULL,
  pid          INTEGER NOT NULL,
  types        TEXT NOT NULL DEFAULT '[]',
  concurrency  INTEGER NOT NULL,
  processed    INTEGER NOT NULL DEFAULT 0,
  started_at   TEXT NOT NULL,
  heartbeat_at TEXT NOT NULL,
  heartbeat_ms INTEGER NOT NULL
);

CREATE TABLE locks (
  name       TEXT PRIMARY KEY,
  owner      TEXT NOT NULL,
  expires_at INTEGER NOT NULL
);
`,
    down: `
DROP TABLE locks;
DROP TABLE workers;
DROP TABLE events;
DROP VIEW items;
DROP TABLE chunks;
DROP TABLE batches;
DELETE FROM sqlite_sequence WHERE name IN ('chunks', 'events');
`,
  },
  {
    version: 2,
    name: 'api keys; workers report in-flight items and batches',
    up: `
CREATE TABLE api_keys (
  id         TEXT PRIMARY KEY,
  name       TEXT NOT NULL,
  tenant     TEXT NOT NULL,
  admin      INTEGER NOT NULL DEFAULT 0 CHECK (admin IN (0, 1)),
  hash       TEXT NOT NULL,
  created_at TEXT NOT NULL,
  revoked_at TEXT
);

ALTER TABLE workers ADD COLUMN in_flight INTEGER NOT NULL DEFAULT 0;
ALTER TABLE workers ADD COLUMN batches TEXT NOT NULL DEFAULT '[]';
`,
    down: `
ALTER TABLE workers DROP COLUMN batches;
ALTER TABLE workers DROP COLUMN in_flight;
DROP TABLE api_keys;
`,
  },
  {
    version: 3,
    name: 'chunks remember how far their last lease may have started items',
    up: `ALTER TABLE chunks ADD COLUMN started_before INTEGER;`,
    down: `ALTER TABLE chunks DROP COLUMN started_before;`,
  },
];
