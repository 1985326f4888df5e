/**
 * Every SQL statement of the PostgreSQL store, named, with its contract: what it locks, what
 * it returns, what it must never do. `s` is the quoted schema; nothing names a schema literally.
 *
 * Lock order, everywhere: chunk rows (by id) before batch rows (by id). Leases and the
 * reconciler take chunks with SKIP LOCKED and never wait for them.
 */

export function statements(s: string) {
  const BATCH_OPEN = `('queued', 'running', 'paused')`;
  /** Batches `b` a prune may remove: finished before `before`, of tenant `tenant` unless null, none of their chunks leased. */
  const prunable = (before: string, tenant: string) => `
b.status IN ('completed', 'failed', 'cancelled') AND b.finished_at < ${before}::timestamptz
AND (${tenant}::text IS NULL OR b.tenant = ${tenant})
AND NOT EXISTS (SELECT 1 FROM ${s}.chunks c WHERE c.batch_id = b.id AND c.status = 'leased')`;
  return {
    // ------------------------------------------------------------------------ batches

    /** Batches per status, for health checks. */
    BATCHES_COUNT: `SELECT status, count(*)::int AS n FROM ${s}.batches GROUP BY status`,

    /** Inserts a batch at submit (total and digest are written when the stream ends). */
    BATCH_INSERT: `
INSERT INTO ${s}.batches (id, tenant, type, status, priority, labels, idempotency_key,
                          max_attempts, timeout_ms, backoff_base_ms, backoff_max_ms, concurrency)
VALUES ($1, $2, $3, 'queued', $4, $5, $6, $7, $8, $9, $10, $11)`,

    /** Sets a submitted batch's total and digest once every chunk is in. */
    /** Ends a submission: its totals, and created_at when its items had all arrived, as on SQLite (not the transaction's start). */
    BATCH_FINISH_SUBMIT: `UPDATE ${s}.batches SET total = $2, submit_digest = $3, created_at = clock_timestamp() WHERE id = $1 RETURNING *`,

    /** Inserts `rows` chunks in one statement; params are (batch_id, seq0, n, payloads) per row. */
    CHUNKS_INSERT: (rows: number) =>
      `INSERT INTO ${s}.chunks (batch_id, seq0, n, payloads) VALUES ${Array.from(
        { length: rows },
        (_, i) => `($${i * 4 + 1}::uuid, $${i * 4 + 2}::int, $${i * 4 + 3}::int, $${i * 4 + 4}::json)`,
      ).join(', ')}`,

    /** One batch; the tenant filter applies when $2 is not null. No lock. */
    BATCH_GET: `SELECT * FROM ${s}.batches WHERE id = $1 AND ($2::text IS NULL OR tenant = $2)`,

    /** Batches holding any of the given (tenant, key) pairs. */
    BATCH_BY_KEYS: `
SELECT * FROM ${s}.batches b
  JOIN unnest($1::text[], $2::text[]) AS k(tenant, key) ON b.tenant = k.tenant AND b.idempotency_key = k.key`,

    /** Newest first, keyset-paginated by id (UUIDv7 ids sort by creation time). */
    /** Newest first; $6 is a jsonb object of labels that must all match. */
    BATCH_LIST: `
SELECT * FROM ${s}.batches
 WHERE ($1::text IS NULL OR tenant = $1)
   AND ($2::text IS NULL OR type = $2)
   AND ($3::text[] IS NULL OR status = ANY($3))
   AND ($4::uuid IS NULL OR id < $4)
   AND ($6::jsonb IS NULL OR labels @> $6)
 ORDER BY id DESC
 LIMIT $5`,

    /** How many batches the same filters match ($1-$3 and $4 as labels). */
    BATCH_COUNT: `
SELECT count(*)::int AS n FROM ${s}.batches
 WHERE ($1::text IS NULL OR tenant = $1)
   AND ($2::text IS NULL OR type = $2)
   AND ($3::text[] IS NULL OR status = ANY($3))
   AND ($4::jsonb IS NULL OR labels @> $4)`,

    /** Statuses for workers' control polls; deleted batches are absent. */
    BATCH_STATUSES: `SELECT id, status FROM ${s}.batches WHERE id = ANY($1::uuid[])`,

    /** A status change guarded by the allowed source statuses; no row back means it was not allowed. */
    BATCH_TRANSITION: `
UPDATE ${s}.batches
   SET status = CASE WHEN $2 = 'resume' THEN CASE WHEN started_at IS NULL THEN 'queued' ELSE 'running' END ELSE $2 END
 WHERE id = $1 AND status = ANY($3::text[])
RETURNING *`,

    /** Closes a batch as cancelled, counting the pending items the same transaction cancelled. */
    BATCH_CANCEL: `
UPDATE ${s}.batches SET status = 'cancelled', cancelled = cancelled + $2, finished_at = now()
 WHERE id = $1 AND status IN ${BATCH_OPEN}
RETURNING *`,

    /**
     * Applies one flush's outcome to a batch: counters, aggregates (exact numeric sums), leased
     * count, completion and the progress clock. Locks the batch row (after its chunks). Returns
     * the new row with `old_status` and `progress_due` so the caller writes events exactly once.
     */
    BATCH_APPLY: `
WITH old AS (
  -- The lock waits for a concurrent writer and returns the row as it left it, so the
  -- completion test below sees the latest counters. NO KEY UPDATE: see BATCH_LOCK.
  SELECT id, status, succeeded, failed, cancelled, total, progress_at
    FROM ${s}.batches WHERE id = $1 FOR NO KEY UPDATE
), calc AS (
  SELECT id,
         status IN ${BATCH_OPEN} AND succeeded + $2 + failed + $3 + cancelled + $4 >= total AS completes,
         progress_at IS NULL OR progress_at <= now() - interval '1 second' AS progress_due
    FROM old
)
UPDATE ${s}.batches b
   SET succeeded = b.succeeded + $2, failed = b.failed + $3, cancelled = b.cancelled + $4,
       leased_items = b.leased_items - $5,
       aggregates = b.aggregates || coalesce((
         SELECT jsonb_object_agg(d.key, (coalesce((b.aggregates ->> d.key)::numeric, 0) + d.value::numeric)::text)
           FROM jsonb_each_text($6::jsonb) d), '{}'::jsonb),
       status = CASE WHEN calc.completes THEN 'completed' ELSE b.status END,
       finished_at = CASE WHEN calc.completes THEN now() ELSE b.finished_at END,
       progress_at = CASE WHEN NOT calc.completes AND calc.progress_due THEN now() ELSE b.progress_at END
  FROM calc
 WHERE b.id = calc.id
RETURNING b.*, calc.completes, NOT calc.completes AND calc.progress_due AS progress`,

    /** Non-terminal batches whose items are all terminal, completed in one statement (reconciler). */
    BATCHES_FINALIZE: `
WITH stuck AS (
  SELECT id FROM ${s}.batches
   WHERE status IN ${BATCH_OPEN} AND total > 0 AND succeeded + failed + cancelled >= total
   FOR NO KEY UPDATE SKIP LOCKED
)
UPDATE ${s}.batches b SET status = 'completed', finished_at = now()
  FROM stuck WHERE b.id = stuck.id
RETURNING b.*`,

    /** Batches still open or finished since $1, newest first. */
    BATCHES_RECENT: `
SELECT id FROM ${s}.batches
 WHERE (status IN ${BATCH_OPEN} OR finished_at >= $1) AND ($3::uuid IS NULL OR id < $3)
 ORDER BY id DESC LIMIT $2`,

    /** Item counts of one batch by status, from chunk contents (the items view). */
    ITEMS_COUNT_BY_STATUS: `SELECT status, count(*)::int AS n FROM ${s}.items WHERE batch_id = $1 GROUP BY status`,

    /** Overwrites counters after a verified mismatch. */
    BATCH_SET_COUNTERS: `
UPDATE ${s}.batches
   SET succeeded = $2, failed = $3, cancelled = $4, status = $5,
       finished_at = CASE WHEN $5 IN ('queued', 'running') THEN NULL ELSE finished_at END
 WHERE id = $1`,

    /** Reopens a batch after retry-failed moved `$2` failed items back to pending. */
    BATCH_REOPEN: `
UPDATE ${s}.batches
   SET failed = failed - $2, finished_at = NULL,
       status = CASE WHEN status = 'paused' THEN 'paused' WHEN started_at IS NULL THEN 'queued' ELSE 'running' END
 WHERE id = $1 AND status = ANY($3::text[])
RETURNING *`,

    /** Removes a batch and (cascade) its chunks. */
    BATCH_DELETE: `DELETE FROM ${s}.batches WHERE id = $1`,

    /**
     * Up to $3 batches a prune may remove, oldest finished first, with their item counts:
     * finished before $1, of tenant $2 when not null, no chunk leased. Reads only (the
     * batches_finished index).
     */
    BATCHES_PRUNE_CANDIDATES: `
SELECT b.id, b.total FROM ${s}.batches b WHERE ${prunable('$1', '$2')} ORDER BY b.finished_at, b.id LIMIT $3`,

    /** How many batches a prune would remove now: the filter of BATCHES_PRUNE_CANDIDATES. */
    BATCHES_PRUNABLE: `SELECT count(*)::int AS n FROM ${s}.batches b WHERE ${prunable('$1', '$2')}`,

    /**
     * Locks every chunk of the batches $1 in id order, as commits do, so that the delete after
     * it takes batch rows only once their chunks are held (the lock order).
     */
    CHUNKS_LOCK_OF_BATCHES: `SELECT id FROM ${s}.chunks WHERE batch_id = ANY($1::uuid[]) ORDER BY id FOR UPDATE`,

    /**
     * Deletes those of the batches $1 that still match the prune filter ($2 finished before,
     * $3 tenant) once their chunks are locked, with their events; chunks go by cascade. A batch
     * row another transaction holds (a retry-failed reopening it) is skipped, not waited for.
     */
    BATCHES_PRUNE: `
WITH doomed AS (
  SELECT b.id FROM ${s}.batches b WHERE b.id = ANY($1::uuid[]) AND ${prunable('$2', '$3')} FOR UPDATE SKIP LOCKED
), events AS (
  DELETE FROM ${s}.events e USING doomed d WHERE e.batch_id = d.id
)
DELETE FROM ${s}.batches b USING doomed d WHERE b.id = d.id RETURNING b.id`,

    // ------------------------------------------------------------------------ leasing

    /**
     * Up to three batches to serve next: runnable pending work, highest priority, then least
     * recently served; batches at their concurrency cap, and those in $2 (passed over this
     * lease), are skipped. Reads only.
     */
    LEASE_CANDIDATES: `
SELECT b.* FROM ${s}.batches b
 WHERE b.status IN ('queued', 'running')
   AND b.type = ANY($1::text[])
   AND (b.concurrency IS NULL OR b.leased_items < b.concurrency)
   AND NOT (b.id = ANY($2::uuid[]))
   AND EXISTS (SELECT 1 FROM ${s}.chunks c
                WHERE c.batch_id = b.id AND c.status = 'pending' AND c.run_after <= now())
 ORDER BY b.priority DESC, b.served_at NULLS FIRST
 LIMIT 3`,

    /**
     * The first runnable pending chunks of a batch, locked, skipping those another worker is
     * taking. `partial`: the chunk holds recorded outcomes or a start mark, so it is leased
     * whole, never split (planLease).
     */
    LEASE_PENDING_CHUNKS: `
SELECT id, seq0, seqs, skip, n, done, attempt, started_before, (done > 0 OR started_before IS NOT NULL) AS partial
  FROM ${s}.chunks
 WHERE batch_id = $1 AND status = 'pending' AND run_after <= now()
 ORDER BY id
 LIMIT 16
 FOR UPDATE SKIP LOCKED`,

    /** Payloads of one (locked) chunk, read only to split its head off. */
    CHUNK_PAYLOADS: `SELECT payloads::text AS payloads FROM ${s}.chunks WHERE id = $1`,

    /** Inserts one chunk (a split head or a retry chunk), pending; returns its id. */
    CHUNK_INSERT: `
INSERT INTO ${s}.chunks (batch_id, seq0, seqs, n, payloads, attempt, run_after, started_before)
VALUES ($1, $2, $3, $4, $5::json, $6, now() + $7 * interval '1 millisecond', $8)
RETURNING id`,

    /** Gives up a chunk's first `$2` slots to a split-off chunk. */
    CHUNK_ADVANCE_SKIP: `UPDATE ${s}.chunks SET skip = skip + $2 WHERE id = $1`,

    /**
     * Leases locked chunks: a new lease number (the fencing token), an attempt used, an expiry,
     * and the start marks $4 maps chunk ids to (leaseMarks' `written`: a final-attempt lease's
     * own, or the one kept past the final attempt); other chunks get none (unknown).
     */
    CHUNKS_LEASE: `
UPDATE ${s}.chunks
   SET status = 'leased', attempt = attempt + 1, lease_no = lease_no + 1, lease_owner = $2,
       lease_expires_at = now() + $3 * interval '1 millisecond',
       started_before = ($4::jsonb ->> id::text)::int
 WHERE id = ANY($1::bigint[])
RETURNING id, seq0, seqs, skip, n, payloads, state, attempt, lease_no, commit_no, lease_expires_at`,

    /**
     * Locks a batch row for a lease, after its chunks. NO KEY UPDATE, not UPDATE: inserting a
     * chunk takes KEY SHARE on its batch through the foreign key, and UPDATE would conflict
     * with that, deadlocking two transactions that each insert a chunk and then lock the batch.
     */
    BATCH_LOCK: `SELECT * FROM ${s}.batches WHERE id = $1 FOR NO KEY UPDATE`,

    /** Marks a batch served (fairness), counts its leased items, starts it. The caller holds BATCH_LOCK. */
    BATCH_MARK_LEASED: `
UPDATE ${s}.batches
   SET served_at = clock_timestamp(), leased_items = leased_items + $2,
       status = CASE WHEN status = 'queued' THEN 'running' ELSE status END,
       started_at = coalesce(started_at, now())
 WHERE id = $1`,

    // ------------------------------------------------------------------------ committing

    /** Locks the chunks a flush writes, in id order, and reads what the fence and close need. */
    CHUNKS_FENCE: `
SELECT id, batch_id, n, skip, done, attempt, started_before, lease_no, commit_no, status FROM ${s}.chunks
 WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE`,

    /**
     * Writes many chunks at once from one JSON document (states embedded as JSON, so nothing
     * is escaped). Callers verified every fence under the lock taken by CHUNKS_FENCE.
     */
    CHUNKS_WRITE: `
UPDATE ${s}.chunks c
   SET state = v.state, done = v.done, succeeded = c.succeeded + v.succeeded, failed = c.failed + v.failed,
       cancelled = c.cancelled + v.cancelled, status = v.status, attempt = v.attempt, started_before = v.started_before,
       error = coalesce(v.error, c.error), run_after = now(), commit_no = v.commit_no,
       lease_owner = CASE WHEN v.status = 'leased' THEN c.lease_owner END,
       lease_expires_at = CASE WHEN v.status = 'leased' THEN c.lease_expires_at END
  FROM json_to_recordset($1::json) AS v(id bigint, state json, done int, succeeded int, failed int,
                                        cancelled int, status text, attempt int, started_before int, error json, commit_no int)
 WHERE c.id = v.id`,

    /**
     * Extends leases still held under their lease numbers and not yet expired (an expired lease
     * is over even before a reconciler hands it back: a cancel relies on that); returns the ids
     * extended. Locks in id order, as commits do, so the two cannot deadlock.
     */
    CHUNKS_RENEW: `
WITH held AS (
  SELECT c.id FROM ${s}.chunks c
    JOIN unnest($1::bigint[], $2::int[]) AS v(id, lease_no) ON c.id = v.id
   WHERE c.lease_no = v.lease_no AND c.status = 'leased' AND c.lease_expires_at > now()
   ORDER BY c.id
   FOR UPDATE OF c
)
UPDATE ${s}.chunks c SET lease_expires_at = now() + $3 * interval '1 millisecond'
  FROM held WHERE c.id = held.id
RETURNING c.id`,

    /** Ends a worker's leases now: they count as expired from here on (a worker declared dead). */
    CHUNKS_EXPIRE_OWNER: `
UPDATE ${s}.chunks SET lease_expires_at = now() - interval '1 millisecond'
 WHERE status = 'leased' AND lease_owner = $1 AND lease_expires_at >= now() - interval '1 millisecond'
RETURNING id`,

    /** Expired leases, oldest first, locked with SKIP LOCKED so two reconcilers split the work. */
    CHUNKS_EXPIRED: `
SELECT c.id, c.batch_id, c.n, c.skip, c.done, c.attempt, c.lease_owner, b.status AS batch_status
  FROM ${s}.chunks c JOIN ${s}.batches b ON b.id = c.batch_id
 WHERE c.status = 'leased' AND c.lease_expires_at < now() AND ($2::uuid IS NULL OR c.batch_id = $2)
 ORDER BY c.lease_expires_at
 LIMIT $1
 FOR UPDATE OF c SKIP LOCKED`,

    /** Hands a locked expired chunk back to pending; its attempt stays used. */
    CHUNK_REQUEUE: `
UPDATE ${s}.chunks SET status = 'pending', lease_owner = NULL, lease_expires_at = NULL, run_after = now() WHERE id = $1`,

    /** Closes a locked chunk: unrecorded items become cancelled. */
    CHUNK_CLOSE_CANCELLED: `
UPDATE ${s}.chunks
   SET status = 'cancelled', cancelled = cancelled + (n - skip - done), done = n - skip,
       lease_owner = NULL, lease_expires_at = NULL
 WHERE id = $1`,

    /** Adjusts a batch after the reconciler handed back or closed an expired chunk. */
    BATCH_UNLEASE: `UPDATE ${s}.batches SET leased_items = leased_items - $2, cancelled = cancelled + $3 WHERE id = $1`,

    /** Closes all pending chunks of a batch as cancelled (locks them); returns the items closed. */
    BATCH_CANCEL_PENDING: `
WITH p AS (
  SELECT id, n - skip - done AS items FROM ${s}.chunks
   WHERE batch_id = $1 AND status = 'pending' ORDER BY id FOR UPDATE
), u AS (
  UPDATE ${s}.chunks c SET status = 'cancelled', cancelled = c.cancelled + p.items, done = c.n - c.skip
    FROM p WHERE c.id = p.id AND c.status = 'pending'
  RETURNING p.items
)
SELECT coalesce(sum(items), 0)::int AS items FROM u`,

    /**
     * Closes pending chunks of cancelled batches ($1: one batch, or null for all) as cancelled,
     * skipping chunks another transaction holds; returns the items closed per batch.
     */
    CANCELLED_SWEEP: `
WITH p AS (
  SELECT c.id, c.batch_id, c.n - c.skip - c.done AS items
    FROM ${s}.chunks c JOIN ${s}.batches b ON b.id = c.batch_id
   WHERE c.status = 'pending' AND b.status = 'cancelled' AND ($1::uuid IS NULL OR b.id = $1)
   ORDER BY c.id
   FOR UPDATE OF c SKIP LOCKED
), u AS (
  UPDATE ${s}.chunks c SET status = 'cancelled', cancelled = c.cancelled + p.items, done = c.n - c.skip
    FROM p WHERE c.id = p.id
  RETURNING p.batch_id, p.items
)
SELECT batch_id, sum(items)::int AS items FROM u GROUP BY batch_id ORDER BY batch_id`,

    /**
     * CANCELLED_SWEEP for one batch ($1) that waits for chunks another transaction holds (a
     * lease about to find the batch cancelled) instead of skipping them, so that a cancel
     * returns with every pending item cancelled.
     */
    CANCELLED_SWEEP_BATCH: `
WITH p AS (
  SELECT c.id, c.batch_id, c.n - c.skip - c.done AS items
    FROM ${s}.chunks c JOIN ${s}.batches b ON b.id = c.batch_id
   WHERE c.batch_id = $1 AND c.status = 'pending' AND b.status = 'cancelled'
   ORDER BY c.id
   FOR UPDATE OF c
), u AS (
  UPDATE ${s}.chunks c SET status = 'cancelled', cancelled = c.cancelled + p.items, done = c.n - c.skip
    FROM p WHERE c.id = p.id AND c.status = 'pending'
  RETURNING p.batch_id, p.items
)
SELECT batch_id, sum(items)::int AS items FROM u GROUP BY batch_id`,

    /** How many chunks of a batch are leased, the last expiry, and the store's clock. */
    BATCH_LEASES: `
SELECT count(*)::int AS leased, max(lease_expires_at) AS deadline, now() AS now
  FROM ${s}.chunks WHERE batch_id = $1 AND status = 'leased'`,

    /**
     * How many chunks of a batch are leased, after locking all of them (in id order, as leases
     * and commits do): a lease transaction still in flight is waited for and counted, and no
     * new lease can take one of them before the caller's transaction ends. For delete.
     */
    BATCH_LEASES_LOCKED: `
SELECT count(*) FILTER (WHERE status = 'leased')::int AS leased
  FROM (SELECT status FROM ${s}.chunks WHERE batch_id = $1 ORDER BY id FOR UPDATE) c`,

    /**
     * Chunks of a batch holding failed items, locked, for retry-failed. Leased chunks are left
     * alone (their worker's next commit rewrites the state); FOR UPDATE re-checks the status
     * after waiting, so a chunk leased meanwhile is skipped too.
     */
    BATCH_FAILED_CHUNKS: `
SELECT * FROM ${s}.chunks WHERE batch_id = $1 AND failed > 0 AND status <> 'leased' ORDER BY id FOR UPDATE`,

    /** Rewrites a chunk after retry-failed moved its failed items out. */
    CHUNK_MOVE_FAILED: `UPDATE ${s}.chunks SET state = $2::json, failed = failed - $3 WHERE id = $1`,

    // ------------------------------------------------------------------------ items

    /**
     * Chunks with explicit seqs (retries), which can sit anywhere in seq order, narrowed to those
     * that can hold items of status $2 and a seq past $3: in (first seq, id) keyset order after
     * ($4, $5). Payloads are read only for the page returned.
     */
    ITEMS_SCATTERED_CHUNKS: `
SELECT c.* FROM ${s}.chunks c
  JOIN (SELECT id, (SELECT min(x) FROM unnest(seqs) x) AS first_seq
          FROM ${s}.chunks
         WHERE batch_id = $1 AND seqs IS NOT NULL AND ${statusHint('$2')}
           AND (SELECT max(x) FROM unnest(seqs) x) > $3) k ON k.id = c.id
 WHERE (k.first_seq, c.id) > ($4, $5)
 ORDER BY k.first_seq, c.id
 LIMIT $6`,

    /** Contiguous chunks reaching past seq $3, in (seq0, id) keyset order after ($4, $5). */
    ITEMS_CONTIGUOUS_CHUNKS: `
SELECT * FROM ${s}.chunks
 WHERE batch_id = $1 AND seqs IS NULL AND ${statusHint('$2')}
   AND seq0 + n > $3 AND (seq0, id) > ($4, $5)
 ORDER BY seq0, id
 LIMIT $6`,

    // ------------------------------------------------------------------------ events

    /** Inserts events from one JSON array of {batch_id, tenant, type, data}. */
    EVENTS_INSERT: `
INSERT INTO ${s}.events (batch_id, tenant, type, data)
SELECT batch_id, tenant, type, data FROM json_to_recordset($1::json) AS e(batch_id uuid, tenant text, type text, data jsonb)`,

    /** Committed events after id $1 in id order, optionally of one batch, tenant or types: history. */
    EVENTS_LIST: `
SELECT id, batch_id, tenant, type, data, created_at FROM ${s}.events
 WHERE id > $1
   AND ($2::uuid IS NULL OR batch_id = $2)
   AND ($3::text IS NULL OR tenant = $3)
   AND ($4::text[] IS NULL OR type = ANY($4))
 ORDER BY id
 LIMIT $5`,

    /**
     * Events committed between snapshot $1 (exclusive) and snapshot $2 (inclusive), in (txid,
     * id) order after position ($3, $4) when given. Snapshots, not ids, decide: an event's id is
     * taken at insert, and a transaction holding a smaller id may commit later. A transaction
     * still running at $2 is read in a later window, so none is missed and none repeated.
     * "Not visible in $1" is spelled as its two index ranges — started after $1 (txid >= its
     * xmax) or running at $1 (in its xip list) — so an old transaction left open elsewhere does
     * not make every poll scan the events written since it began.
     */
    EVENTS_FOLLOW: `
SELECT e.*, $1 || '|' || $2 || '|' || e.txid::text || ':' || e.id AS cursor
  FROM (
    SELECT * FROM ${s}.events
     WHERE txid >= pg_snapshot_xmax($1::pg_snapshot) AND txid < pg_snapshot_xmax($2::pg_snapshot)
    UNION ALL
    SELECT * FROM ${s}.events WHERE txid = ANY (ARRAY(SELECT pg_snapshot_xip($1::pg_snapshot)))
  ) e
 WHERE pg_visible_in_snapshot(e.txid, $2::pg_snapshot)
   AND ($3::text IS NULL OR (e.txid, e.id) > ($3::xid8, $4::bigint))
   AND ($5::text IS NULL OR e.tenant = $5)
   AND ($6::text[] IS NULL OR e.type = ANY($6))
 ORDER BY e.txid, e.id
 LIMIT $7`,

    /** A snapshot of now: the cursor from which following yields only later commits. */
    EVENTS_CURSOR: `SELECT pg_current_snapshot()::text AS cursor`,
    /** The last event id ever given (deleted events included): no cursor of this database is beyond it. */
    EVENTS_SEQUENCE: `SELECT coalesce(pg_sequence_last_value(pg_get_serial_sequence('${s}.events', 'id')::regclass), 0)::text AS id`,

    EVENTS_DELETE_BATCH: `DELETE FROM ${s}.events WHERE batch_id = $1`,

    // ------------------------------------------------------------------------ workers and locks

    WORKER_UPSERT: `
INSERT INTO ${s}.workers (id, host, pid, types, concurrency, processed, in_flight, batches)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (id) DO UPDATE
   SET types = excluded.types, concurrency = excluded.concurrency, processed = excluded.processed,
       in_flight = excluded.in_flight, batches = excluded.batches, heartbeat_at = now()`,
    WORKER_DELETE: `DELETE FROM ${s}.workers WHERE id = $1 RETURNING id`,
    WORKERS_LIST: `SELECT * FROM ${s}.workers ORDER BY started_at`,
    WORKERS_PRUNE: `DELETE FROM ${s}.workers WHERE heartbeat_at < now() - $1 * interval '1 millisecond'`,

    /** Takes the lock when free, expired, or already ours; a returned row means taken. */
    LOCK_TRY: `
INSERT INTO ${s}.locks (name, owner, expires_at) VALUES ($1, $2, now() + $3 * interval '1 millisecond')
ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
 WHERE ${s}.locks.expires_at < now() OR ${s}.locks.owner = excluded.owner
RETURNING name`,
    LOCK_RELEASE: `DELETE FROM ${s}.locks WHERE name = $1 AND owner = $2`,

    // ------------------------------------------------------------------------ api keys

    KEY_INSERT: `INSERT INTO ${s}.api_keys (id, name, tenant, admin, hash) VALUES ($1, $2, $3, $4, $5) RETURNING *`,
    KEYS_LIST: `SELECT * FROM ${s}.api_keys ORDER BY created_at DESC, id`,
    /** Keeps the first revocation time when revoked again. */
    KEY_REVOKE: `UPDATE ${s}.api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 RETURNING *`,
    KEY_GET: `SELECT * FROM ${s}.api_keys WHERE id = $1`,
    KEYS_EXIST: `SELECT EXISTS (SELECT 1 FROM ${s}.api_keys) AS found`,
  };
}

/** A chunk can hold items of the status in `param` (null: any). Mirrors the SQLite store's hint. */
function statusHint(param: string): string {
  return `(${param}::text IS NULL OR CASE ${param}::text
    WHEN 'succeeded' THEN succeeded > 0 WHEN 'failed' THEN failed > 0 WHEN 'cancelled' THEN cancelled > 0
    WHEN 'pending' THEN status = 'pending' WHEN 'running' THEN status = 'leased' END)`;
}

export type PgStatements = ReturnType<typeof statements>;
