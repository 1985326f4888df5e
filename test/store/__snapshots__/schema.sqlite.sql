-- index batches_finished
CREATE INDEX batches_finished ON batches (finished_at) WHERE finished_at IS NOT NULL;

-- index batches_idempotency
CREATE UNIQUE INDEX batches_idempotency ON batches (tenant, idempotency_key) WHERE idempotency_key IS NOT NULL;

-- index batches_open
CREATE INDEX batches_open ON batches (id) WHERE status IN ('queued', 'running', 'paused');

-- index batches_runnable
CREATE INDEX batches_runnable ON batches (priority DESC, served_at) WHERE status IN ('queued', 'running');

-- index batches_tenant
CREATE INDEX batches_tenant ON batches (tenant, id);

-- index chunks_batch
CREATE INDEX chunks_batch ON chunks (batch_id, id);

-- index chunks_leased
CREATE INDEX chunks_leased ON chunks (lease_expires_at) WHERE status = 'leased';

-- index chunks_pending
CREATE INDEX chunks_pending ON chunks (batch_id, id) WHERE status = 'pending';

-- index events_batch
CREATE INDEX events_batch ON events (batch_id, id);

-- table api_keys
CREATE TABLE api_keys (
  id         TEXT PRIMARY KEY,
  name       TEXT NOT NULL,
  tenant     TEXT NOT NULL,
  admin      INTEGER NOT NULL DEFAULT 0 CHECK (admin IN (0, 1)),
  hash       TEXT NOT NULL,
  created_at TEXT NOT NULL,
  revoked_at TEXT
);

-- table batches
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

-- table chunks
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
, started_before INTEGER);

-- table events
CREATE TABLE events (
  id         INTEGER PRIMARY KEY AUTOINCREMENT,
  batch_id   TEXT,
  tenant     TEXT,
  type       TEXT NOT NULL,
  data       TEXT NOT NULL DEFAULT '{}',
  created_at TEXT NOT NULL
);

-- table locks
CREATE TABLE locks (
  name       TEXT PRIMARY KEY,
  owner      TEXT NOT NULL,
  expires_at INTEGER NOT NULL
);

-- table schema_migrations
CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL);

-- table workers
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
, in_flight INTEGER NOT NULL DEFAULT 0, batches TEXT NOT NULL DEFAULT '[]');

-- view items
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
