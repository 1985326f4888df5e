/**
 * Every SQL statement of the embedded store, named, with its contract. All writes run inside
 * `BEGIN IMMEDIATE` transactions opened by SqliteStore, so each statement here may assume it
 * is alone: SQLite serialises writers, across processes too, and nothing is locked row by row.
 */

// ---------------------------------------------------------------------------- batches

/** Inserts one batch; total and digest are known because the submission was staged first. */
export const BATCH_INSERT = `
INSERT INTO batches (id, tenant, type, status, priority, total, labels, idempotency_key, submit_digest,
                     max_attempts, timeout_ms, backoff_base_ms, backoff_max_ms, concurrency, created_at)
VALUES (?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`;

/** One batch by id; the tenant filter is applied when the second parameter is not null. */
/** Batches per status, for health checks. */
export const BATCHES_COUNT = `SELECT status, count(*) AS n FROM batches GROUP BY status`;
export const BATCH_GET = `SELECT * FROM batches WHERE id = ? AND (? IS NULL OR tenant = ?)`;

/** The batch holding an idempotency key for a tenant, with its submit digest. */
export const BATCH_BY_KEY = `SELECT * FROM batches WHERE tenant = ? AND idempotency_key = ?`;

/** Newest first, keyset-paginated by id (ids are UUIDv7, so id order is creation order). */
/** The filters of a batch listing; params: tenant ×2, type ×2, statuses (JSON array) ×2, labels (JSON object, all must match) ×2. */
const BATCH_FILTER = `(? IS NULL OR tenant = ?)
   AND (? IS NULL OR type = ?)
   AND (? IS NULL OR status IN (SELECT value FROM json_each(?)))
   AND (? IS NULL OR NOT EXISTS (
         SELECT 1 FROM json_each(?) AS want
          WHERE NOT EXISTS (SELECT 1 FROM json_each(batches.labels) AS have WHERE have.key = want.key AND have.value = want.value)))`;

export const BATCH_LIST = `
SELECT * FROM batches
 WHERE ${BATCH_FILTER}
   AND (? IS NULL OR id < ?)
 ORDER BY id DESC
 LIMIT ?`;

export const BATCH_COUNT = `SELECT count(*) AS n FROM batches WHERE ${BATCH_FILTER}`;

/** Statuses of a set of batches, for workers' control polls; deleted batches are absent. */
export const BATCH_STATUSES = `SELECT id, status FROM batches WHERE id IN (SELECT value FROM json_each(?))`;

/** Sets a status and optionally finished_at; callers have checked the transition. */
export const BATCH_SET_STATUS = `UPDATE batches SET status = ?, finished_at = coalesce(?, finished_at) WHERE id = ?`;

/**
 * Writes counters, aggregates, lease bookkeeping and status after a commit or repair. Callers
 * computed every value inside the same IMMEDIATE transaction that read the row.
 */
export const BATCH_UPDATE_PROGRESS = `
UPDATE batches
   SET succeeded = ?, failed = ?, cancelled = ?, aggregates = ?, leased_items = ?,
       status = ?, finished_at = ?, progress_at = ?
 WHERE id = ?`;

/** Marks a batch served now (fairness), counts the items it has leased out, starts it. */
export const BATCH_MARK_LEASED = `
UPDATE batches
   SET served_at = ?, leased_items = leased_items + ?,
       status = CASE WHEN status = 'queued' THEN 'running' ELSE status END,
       started_at = coalesce(started_at, ?)
 WHERE id = ?`;

/** Removes a batch; chunks go with it (ON DELETE CASCADE). Events are deleted separately. */
export const BATCH_DELETE = `DELETE FROM batches WHERE id = ?`;

/**
 * Batches a prune may remove: finished before @before (ISO time), of tenant @tenant unless null, none of
 * their chunks leased. Uses the batches_finished index.
 */
const PRUNABLE = `
b.status IN ('completed', 'failed', 'cancelled') AND b.finished_at < @before AND (@tenant IS NULL OR b.tenant = @tenant)
AND NOT EXISTS (SELECT 1 FROM chunks c WHERE c.batch_id = b.id AND c.status = 'leased')`;

/** Up to @limit batches a prune may remove, oldest finished first, with their item counts. */
export const BATCHES_PRUNE_CANDIDATES = `SELECT b.id, b.total FROM batches b WHERE ${PRUNABLE} ORDER BY b.finished_at, b.id LIMIT @limit`;

/** How many batches a prune would remove now. */
export const BATCHES_PRUNABLE = `SELECT count(*) AS n FROM batches b WHERE ${PRUNABLE}`;

/** Non-terminal batches whose items are all terminal: the reconciler completes them. */
export const BATCHES_STUCK = `
SELECT * FROM batches
 WHERE status IN ('queued', 'running', 'paused') AND total > 0 AND succeeded + failed + cancelled >= total`;

/** Batches that may have changed since a time: still open, or finished since then. */
export const BATCHES_RECENT = `
SELECT * FROM batches
 WHERE (status IN ('queued', 'running', 'paused') OR finished_at >= ?) AND (? IS NULL OR id < ?)
 ORDER BY id DESC
 LIMIT ?`;

/** Item counts of one batch by status, from chunk contents through the items view. */
/** The status of a chunk's slots that have no entry of their own, as the `items` view gives it. */
const CHUNK_ITEM_STATUS = `CASE c.status WHEN 'leased' THEN 'running' WHEN 'cancelled' THEN 'cancelled' WHEN 'failed' THEN 'failed' ELSE 'pending' END`;

export const ITEMS_COUNT_BY_STATUS = `SELECT status, count(*) AS n FROM items WHERE batch_id = ? GROUP BY status`;

/** A batch's chunk ids after one, in order, a slice at a time (for counting in slices). */
export const CHUNK_IDS_AFTER = `SELECT id FROM chunks WHERE batch_id = ? AND id > ? ORDER BY id LIMIT ?`;

/**
 * ITEMS_COUNT_BY_STATUS over the batch's chunks with ids in (second, third] (the three given
 * twice), counted as the
 * `items` view would list them: a chunk's recorded entries one by one, and the slots of a chunk
 * without entries all in the chunk's status, which needs no pass over its payloads.
 */
export const ITEMS_COUNT_BY_STATUS_IN_RANGE = `
SELECT status, sum(n) AS n FROM (
  SELECT coalesce(s.value ->> 's', ${CHUNK_ITEM_STATUS}) AS status, 1 AS n
    FROM chunks c, json_each(c.state) s
   WHERE c.batch_id = ? AND c.id > ? AND c.id <= ? AND c.state IS NOT NULL
     AND s.key >= c.skip AND coalesce(s.value ->> 's', '') <> 'moved'
  UNION ALL
  SELECT ${CHUNK_ITEM_STATUS}, c.n - c.skip
    FROM chunks c
   WHERE c.batch_id = ? AND c.id > ? AND c.id <= ? AND c.state IS NULL
) GROUP BY status`;

// ---------------------------------------------------------------------------- submit staging

/**
 * Staging lives in the connection's TEMP database, so a long streamed submission takes no lock
 * on the main file: workers keep committing while a 1,000,000-row file is read. Only the final
 * copy into `chunks` runs inside the write transaction.
 */
export const STAGE_CREATE = `
CREATE TEMP TABLE IF NOT EXISTS submit_stage (
  submission INTEGER NOT NULL, batch_index INTEGER NOT NULL, seq0 INTEGER NOT NULL, n INTEGER NOT NULL, payloads TEXT NOT NULL)`;
export const STAGE_INSERT = `INSERT INTO temp.submit_stage (submission, batch_index, seq0, n, payloads) VALUES (?, ?, ?, ?, ?)`;
export const STAGE_COPY = `
INSERT INTO chunks (batch_id, seq0, n, payloads, run_after)
SELECT ?, seq0, n, payloads, 0 FROM temp.submit_stage WHERE submission = ? AND batch_index = ? ORDER BY rowid`;
export const STAGE_CLEAR = `DELETE FROM temp.submit_stage WHERE submission = ?`;

// ---------------------------------------------------------------------------- leasing

/**
 * Up to three batches to serve next among those with runnable pending work: highest priority,
 * then least recently served. Batches at their concurrency cap are skipped. Reads only.
 */
export const LEASE_CANDIDATES = `
SELECT b.* FROM batches b
 WHERE b.status IN ('queued', 'running')
   AND b.type IN (SELECT value FROM json_each(?))
   AND (b.concurrency IS NULL OR b.leased_items < b.concurrency)
   AND EXISTS (SELECT 1 FROM chunks c WHERE c.batch_id = b.id AND c.status = 'pending' AND c.run_after <= ?)
 ORDER BY b.priority DESC, b.served_at
 LIMIT 3`;

/**
 * The first runnable pending chunks of a batch, in order. `partial`: the chunk holds recorded
 * outcomes or a start mark, so it is leased whole, never split (planLease).
 */
export const LEASE_PENDING_CHUNKS = `
SELECT id, seq0, seqs, skip, n, done, attempt, started_before, (done > 0 OR started_before IS NOT NULL) AS partial
  FROM chunks
 WHERE batch_id = ? AND status = 'pending' AND run_after <= ?
 ORDER BY id
 LIMIT 16`;

/** Payloads of one chunk, read only to split its head off. */
export const CHUNK_PAYLOADS = `SELECT payloads FROM chunks WHERE id = ?`;

/** Inserts a chunk (a split head, a retry chunk, a retry-failed chunk), pending. */
export const CHUNK_INSERT = `
INSERT INTO chunks (batch_id, seq0, seqs, n, payloads, attempt, run_after, started_before) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`;

/** Gives up a chunk's first `k` slots to a split-off chunk. */
export const CHUNK_ADVANCE_SKIP = `UPDATE chunks SET skip = skip + ? WHERE id = ?`;

/**
 * Leases chunks: a new lease number (the fencing token), an attempt used, an expiry, and the
 * start marks the JSON object maps chunk ids to (leaseMarks' `written`: a final-attempt
 * lease's own, or the one kept past the final attempt); other chunks get none (unknown).
 */
export const CHUNKS_LEASE = `
UPDATE chunks
   SET status = 'leased', attempt = attempt + 1, lease_no = lease_no + 1, lease_owner = ?, lease_expires_at = ?,
       started_before = (SELECT value FROM json_each(?) WHERE key = CAST(chunks.id AS TEXT))
 WHERE id IN (SELECT value FROM json_each(?))
RETURNING id, batch_id, seq0, seqs, skip, n, done, payloads, state, status, attempt, lease_no, commit_no, error`;

// ---------------------------------------------------------------------------- committing

/** The fields a commit checks its fence against and computes from. */
export const CHUNK_FENCE = `SELECT batch_id, n, skip, done, attempt, started_before, lease_no, commit_no, status FROM chunks WHERE id = ?`;

/** Writes a chunk's state after a commit; the caller verified the fence in this transaction. */
export const CHUNK_WRITE = `
UPDATE chunks
   SET state = ?, done = ?, succeeded = succeeded + ?, failed = failed + ?, cancelled = cancelled + ?,
       status = ?, attempt = ?, started_before = ?, error = coalesce(?, error), run_after = ?, commit_no = ?,
       lease_owner = CASE WHEN ? = 'leased' THEN lease_owner END,
       lease_expires_at = CASE WHEN ? = 'leased' THEN lease_expires_at END
 WHERE id = ?`;

/**
 * Extends one lease if it is still this lease number's and not expired (an expired lease is
 * over even before a reconciler hands it back: a cancel relies on that); changes() tells.
 */
export const CHUNK_RENEW = `
UPDATE chunks SET lease_expires_at = ? WHERE id = ? AND lease_no = ? AND status = 'leased' AND lease_expires_at > ?`;

/** Ends a worker's leases now: they count as expired from here on (a worker declared dead). */
export const CHUNKS_EXPIRE_OWNER = `
UPDATE chunks SET lease_expires_at = ? WHERE status = 'leased' AND lease_owner = ? AND lease_expires_at >= ?`;

/** Leased chunks whose lease has expired (of one batch when given), oldest first, with their batch's status. */
export const CHUNKS_EXPIRED = `
SELECT c.id, c.batch_id, c.n, c.skip, c.done, c.attempt, c.lease_owner, b.status AS batch_status
  FROM chunks c JOIN batches b ON b.id = c.batch_id
 WHERE c.status = 'leased' AND c.lease_expires_at < ? AND (? IS NULL OR c.batch_id = ?)
 ORDER BY c.lease_expires_at
 LIMIT ?`;

/** Hands an expired chunk back to pending; its attempt stays used. */
export const CHUNK_REQUEUE = `
UPDATE chunks SET status = 'pending', lease_owner = NULL, lease_expires_at = NULL, run_after = ? WHERE id = ?`;

/** Closes every unrecorded item of a chunk as cancelled (pending chunks of a cancelled batch, expired ones). */
export const CHUNK_CLOSE_CANCELLED = `
UPDATE chunks
   SET status = 'cancelled', cancelled = cancelled + (n - skip - done), done = n - skip,
       lease_owner = NULL, lease_expires_at = NULL
 WHERE id = ?`;

/** Pending chunks of cancelled batches (optionally one batch), with their unrecorded items. */
export const CANCELLED_PENDING_CHUNKS = `
SELECT c.id, c.batch_id, c.n - c.skip - c.done AS items
  FROM chunks c JOIN batches b ON b.id = c.batch_id
 WHERE c.status = 'pending' AND b.status = 'cancelled' AND (? IS NULL OR b.id = ?)`;

/** Counts items closed as cancelled after the batch was cancelled. */
export const BATCH_ADD_CANCELLED = `UPDATE batches SET cancelled = cancelled + ? WHERE id = ?`;

/** Unrecorded items in the pending chunks of a batch (what a cancel closes). */
export const BATCH_PENDING_ITEMS = `
SELECT coalesce(sum(n - skip - done), 0) AS items FROM chunks WHERE batch_id = ? AND status = 'pending'`;

/** Closes all pending chunks of a batch as cancelled. */
export const BATCH_CANCEL_PENDING = `
UPDATE chunks SET status = 'cancelled', cancelled = cancelled + (n - skip - done), done = n - skip
 WHERE batch_id = ? AND status = 'pending'`;

/** How many chunks of a batch are leased, and when the last lease expires. */
export const BATCH_LEASES = `
SELECT count(*) AS leased, max(lease_expires_at) AS deadline FROM chunks WHERE batch_id = ? AND status = 'leased'`;

/**
 * Chunks of a batch holding failed items, with their contents, for retry-failed. Leased chunks
 * are left alone: their worker rewrites the whole state at its next commit, which would undo
 * the move; their failed items can be retried once the chunk is closed.
 */
export const BATCH_FAILED_CHUNKS = `
SELECT * FROM chunks WHERE batch_id = ? AND failed > 0 AND status <> 'leased' ORDER BY id`;

/** Rewrites a chunk after retry-failed moved its failed items out. */
export const CHUNK_MOVE_FAILED = `UPDATE chunks SET state = ?, failed = failed - ? WHERE id = ?`;

// ---------------------------------------------------------------------------- items

/** A chunk can hold items of the status bound twice here (null: any status). */
const STATUS_HINT = `(? IS NULL OR CASE ?
    WHEN 'succeeded' THEN succeeded > 0 WHEN 'failed' THEN failed > 0 WHEN 'cancelled' THEN cancelled > 0
    WHEN 'pending' THEN status = 'pending' WHEN 'running' THEN status = 'leased' END)`;

/**
 * Chunks holding retried or split items with explicit seqs, which can sit anywhere in seq
 * order: those with a seq past the fourth parameter, in (first seq, id) keyset order after the
 * fifth and sixth; the second and third narrow them to chunks that can hold items of a status.
 * Payloads are read only for the page returned.
 */
export const ITEMS_SCATTERED_CHUNKS = `
SELECT c.* FROM chunks c
  JOIN (SELECT id, (SELECT min(value) FROM json_each(seqs)) AS first_seq
          FROM chunks
         WHERE batch_id = ? AND seqs IS NOT NULL AND ${STATUS_HINT}
           AND (SELECT max(value) FROM json_each(seqs)) > ?) k ON k.id = c.id
 WHERE (k.first_seq, c.id) > (?, ?)
 ORDER BY k.first_seq, c.id
 LIMIT ?`;

/** Contiguous chunks of a batch reaching past a seq, in (seq0, id) keyset order. */
export const ITEMS_CONTIGUOUS_CHUNKS = `
SELECT * FROM chunks
 WHERE batch_id = ? AND seqs IS NULL AND ${STATUS_HINT}
   AND seq0 + n > ? AND (seq0, id) > (?, ?)
 ORDER BY seq0, id
 LIMIT ?`;

// ---------------------------------------------------------------------------- events

export const EVENT_INSERT = `INSERT INTO events (batch_id, tenant, type, data, created_at) VALUES (?, ?, ?, ?, ?)`;

/** Events after an id; SQLite commits one writer at a time, so id order is commit order. */
export const EVENTS_LIST = `
SELECT * FROM events
 WHERE id > ?
   AND (? IS NULL OR batch_id = ?)
   AND (? IS NULL OR tenant = ?)
   AND (? IS NULL OR type IN (SELECT value FROM json_each(?)))
 ORDER BY id
 LIMIT ?`;

export const EVENTS_LAST = `SELECT coalesce(max(id), 0) AS id FROM events`;

/** The last event id ever given (deleted events included): no cursor of this database is beyond it. */
export const EVENTS_SEQUENCE = `SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0) AS id`;

export const EVENTS_DELETE_BATCH = `DELETE FROM events WHERE batch_id = ?`;

// ---------------------------------------------------------------------------- workers and locks

export const WORKER_UPSERT = `
INSERT INTO workers (id, host, pid, types, concurrency, processed, in_flight, batches, started_at, heartbeat_at, heartbeat_ms)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE
   SET types = excluded.types, concurrency = excluded.concurrency, processed = excluded.processed,
       in_flight = excluded.in_flight, batches = excluded.batches,
       heartbeat_at = excluded.heartbeat_at, heartbeat_ms = excluded.heartbeat_ms`;
export const WORKER_DELETE = `DELETE FROM workers WHERE id = ?`;
export const WORKERS_LIST = `SELECT * FROM workers ORDER BY started_at`;
export const WORKERS_PRUNE = `DELETE FROM workers WHERE heartbeat_ms < ?`;

/** Takes the lock when free, expired, or already ours; changes() = 1 means taken. */
export const LOCK_TRY = `
INSERT INTO locks (name, owner, expires_at) VALUES (?, ?, ?)
ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
 WHERE locks.expires_at < ? OR locks.owner = excluded.owner`;
export const LOCK_RELEASE = `DELETE FROM locks WHERE name = ? AND owner = ?`;

// ---------------------------------------------------------------------------- api keys

export const KEY_INSERT = `INSERT INTO api_keys (id, name, tenant, admin, hash, created_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING *`;
export const KEYS_LIST = `SELECT * FROM api_keys ORDER BY created_at DESC, id`;
/** Keeps the first revocation time when revoked again. */
export const KEY_REVOKE = `UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?) WHERE id = ? RETURNING *`;
export const KEY_GET = `SELECT * FROM api_keys WHERE id = ?`;
export const KEYS_EXIST = `SELECT EXISTS (SELECT 1 FROM api_keys) AS found`;
