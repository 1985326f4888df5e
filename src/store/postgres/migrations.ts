/**
 * Numbered migrations of the PostgreSQL store, as functions of the (quoted) schema name so no
 * query ever names a schema literally. Released migrations are never edited: a change is a new
 * number. test/store/schema.test.ts snapshots the resulting schema.
 */

export interface PgMigration {
  version: number;
  name: string;
  up: (s: string) => string;
  down: (s: string) => string;
}

export const PG_MIGRATIONS: PgMigration[] = [
  {
    version: 1,
    name: 'batches, chunks, items view, events, workers, locks',
    up: (s) => `
CREATE TABLE ${s}.batches (
  id              uuid PRIMARY KEY,
  tenant          text NOT NULL,
  type            text NOT NULL,
  status          text NOT NULL CHECK (status IN ('queued','running','paused','completed','failed','cancelled')),
  priority        smallint NOT NULL DEFAULT 5 CHECK (priority BETWEEN 0 AND 10),
  total           integer NOT NULL DEFAULT 0,
  succeeded       integer NOT NULL DEFAULT 0,
  failed          integer NOT NULL DEFAULT 0,
  cancelled       integer NOT NULL DEFAULT 0,
  aggregates      jsonb NOT NULL DEFAULT '{}',
  labels          jsonb NOT NULL DEFAULT '{}',
  idempotency_key text,
  submit_digest   text,
  max_attempts    integer,
  timeout_ms      integer,
  backoff_base_ms integer,
  backoff_max_ms  integer,
  concurrency     integer,
  leased_items    integer NOT NULL DEFAULT 0,
  served_at       timestamptz,
  progress_at     timestamptz,
  created_at      timestamptz NOT NULL DEFAULT now(),
  started_at      timestamptz,
  finished_at     timestamptz
);
CREATE UNIQUE INDEX batches_idempotency ON ${s}.batches (tenant, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX batches_runnable ON ${s}.batches (priority DESC, served_at NULLS FIRST) WHERE status IN ('queued', 'running');
CREATE INDEX batches_tenant ON ${s}.batches (tenant, id);
-- The reconciler looks at open and recently finished batches every pass; without these it
-- would scan every batch ever run.
CREATE INDEX batches_open ON ${s}.batches (id) WHERE status IN ('queued', 'running', 'paused');
CREATE INDEX batches_finished ON ${s}.batches (finished_at) WHERE finished_at IS NOT NULL;

CREATE TABLE ${s}.chunks (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  batch_id         uuid NOT NULL REFERENCES ${s}.batches (id) ON DELETE CASCADE,
  seq0             integer,
  seqs             integer[],
  skip             integer NOT NULL DEFAULT 0,
  n                integer NOT NULL,
  payloads         json NOT NULL,
  state            json,
  done             integer NOT NULL DEFAULT 0,
  succeeded        integer NOT NULL DEFAULT 0,
  failed           integer NOT NULL DEFAULT 0,
  cancelled        integer NOT NULL DEFAULT 0,
  status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending','leased','done','cancelled','failed')),
  attempt          integer NOT NULL DEFAULT 0,
  lease_no         integer NOT NULL DEFAULT 0,
  commit_no        integer NOT NULL DEFAULT 0,
  lease_owner      text,
  lease_expires_at timestamptz,
  run_after        timestamptz NOT NULL DEFAULT '-infinity',
  error            json
);
CREATE INDEX chunks_batch ON ${s}.chunks (batch_id, id);
CREATE INDEX chunks_pending ON ${s}.chunks (batch_id, id) WHERE status = 'pending';
CREATE INDEX chunks_leased ON ${s}.chunks (lease_expires_at) WHERE status = 'leased';

-- One row per item, derived from chunks: mirrors chunkItems() in src/store/chunk-items.ts.
-- ROWS FROM walks payloads and state in lockstep, one parse of each array per chunk (indexing
-- a json array per item would re-parse it every time).
CREATE VIEW ${s}.items AS
SELECT c.batch_id,
       coalesce(c.seq0 + (p.i - 1)::integer, c.seqs[p.i]) AS seq,
       coalesce(p.entry ->> 's',
                CASE c.status WHEN 'leased' THEN 'running' WHEN 'cancelled' THEN 'cancelled'
                              WHEN 'failed' THEN 'failed' ELSE 'pending' END) AS status,
       coalesce((p.entry ->> 'a')::integer, c.attempt) AS attempts,
       p.payload,
       p.entry -> 'r' AS result,
       CASE WHEN p.entry ->> 's' IS NULL AND c.status = 'failed' THEN c.error ELSE p.entry -> 'e' END AS error
  FROM ${s}.chunks c
 CROSS JOIN LATERAL ROWS FROM (json_array_elements(c.payloads), json_array_elements(c.state)) WITH ORDINALITY AS p(payload, entry, i)
 WHERE p.i > c.skip
   AND coalesce(p.entry ->> 's', '') <> 'moved';

-- txid lets the event stream read exactly the events committed between two snapshots.
CREATE TABLE ${s}.events (
  id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  txid       xid8 NOT NULL DEFAULT pg_current_xact_id(),
  batch_id   uuid,
  tenant     text,
  type       text NOT NULL,
  data       jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_batch ON ${s}.events (batch_id, id);
CREATE INDEX events_tail ON ${s}.events (txid, id);

CREATE TABLE ${s}.workers (
  id           text PRIMARY KEY,
  host         text NOT NULL,
  pid          integer NOT NULL,
  types        jsonb NOT NULL DEFAULT '[]',
  concurrency  integer NOT NULL,
  processed    bigint NOT NULL DEFAULT 0,
  started_at   timestamptz NOT NULL DEFAULT now(),
  heartbeat_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE ${s}.locks (
  name       text PRIMARY KEY,
  owner      text NOT NULL,
  expires_at timestamptz NOT NULL
);
`,
    down: (s) => `
DROP TABLE ${s}.locks;
DROP TABLE ${s}.workers;
DROP TABLE ${s}.events;
DROP VIEW ${s}.items;
DROP TABLE ${s}.chunks;
DROP TABLE ${s}.batches;
`,
  },
  {
    version: 2,
    name: 'api keys; workers report in-flight items and batches',
    up: (s) => `
CREATE TABLE ${s}.api_keys (
  id         text PRIMARY KEY,
  name       text NOT NULL,
  tenant     text NOT NULL,
  admin      boolean NOT NULL DEFAULT false,
  hash       text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  revoked_at timestamptz
);

ALTER TABLE ${s}.workers ADD COLUMN in_flight int NOT NULL DEFAULT 0, ADD COLUMN batches jsonb NOT NULL DEFAULT '[]';
`,
    down: (s) => `
ALTER TABLE ${s}.workers DROP COLUMN batches, DROP COLUMN in_flight;
DROP TABLE ${s}.api_keys;
`,
  },
  {
    version: 3,
    name: 'chunks remember how far their last lease may have started items',
    up: (s) => `ALTER TABLE ${s}.chunks ADD COLUMN started_before int;`,
    down: (s) => `ALTER TABLE ${s}.chunks DROP COLUMN started_before;`,
  },
];
