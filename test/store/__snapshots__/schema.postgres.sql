-- columns
api_keys.id text not null
api_keys.name text not null
api_keys.tenant text not null
api_keys.admin boolean not null default false
api_keys.hash text not null
api_keys.created_at timestamp with time zone not null default now()
api_keys.revoked_at timestamp with time zone
batches.id uuid not null
batches.tenant text not null
batches.type text not null
batches.status text not null
batches.priority smallint not null default 5
batches.total integer not null default 0
batches.succeeded integer not null default 0
batches.failed integer not null default 0
batches.cancelled integer not null default 0
batches.aggregates jsonb not null default '{}'::jsonb
batches.labels jsonb not null default '{}'::jsonb
batches.idempotency_key text
batches.submit_digest text
batches.max_attempts integer
batches.timeout_ms integer
batches.backoff_base_ms integer
batches.backoff_max_ms integer
batches.concurrency integer
batches.leased_items integer not null default 0
batches.served_at timestamp with time zone
batches.progress_at timestamp with time zone
batches.created_at timestamp with time zone not null default now()
batches.started_at timestamp with time zone
batches.finished_at timestamp with time zone
chunks.id bigint not null
chunks.batch_id uuid not null
chunks.seq0 integer
chunks.seqs ARRAY
chunks.skip integer not null default 0
chunks.n integer not null
chunks.payloads json not null
chunks.state json
chunks.done integer not null default 0
chunks.succeeded integer not null default 0
chunks.failed integer not null default 0
chunks.cancelled integer not null default 0
chunks.status text not null default 'pending'::text
chunks.attempt integer not null default 0
chunks.lease_no integer not null default 0
chunks.commit_no integer not null default 0
chunks.lease_owner text
chunks.lease_expires_at timestamp with time zone
chunks.run_after timestamp with time zone not null default '-infinity'::timestamp with time zone
chunks.error json
chunks.started_before integer
events.id bigint not null
events.txid xid8 not null default pg_current_xact_id()
events.batch_id uuid
events.tenant text
events.type text not null
events.data jsonb not null default '{}'::jsonb
events.created_at timestamp with time zone not null default now()
items.batch_id uuid
items.seq integer
items.status text
items.attempts integer
items.payload json
items.result json
items.error json
locks.name text not null
locks.owner text not null
locks.expires_at timestamp with time zone not null
schema_migrations.version integer not null
schema_migrations.name text not null
schema_migrations.applied_at timestamp with time zone not null default now()
workers.id text not null
workers.host text not null
workers.pid integer not null
workers.types jsonb not null default '[]'::jsonb
workers.concurrency integer not null
workers.processed bigint not null default 0
workers.started_at timestamp with time zone not null default now()
workers.heartbeat_at timestamp with time zone not null default now()
workers.in_flight integer not null default 0
workers.batches jsonb not null default '[]'::jsonb

-- constraints
batchline.api_keys api_keys_pkey: PRIMARY KEY (id)
batchline.batches batches_pkey: PRIMARY KEY (id)
batchline.batches batches_priority_check: CHECK (((priority >= 0) AND (priority <= 10)))
batchline.batches batches_status_check: CHECK ((status = ANY (ARRAY['queued'::text, 'running'::text, 'paused'::text, 'completed'::text, 'failed'::text, 'cancelled'::text])))
batchline.chunks chunks_batch_id_fkey: FOREIGN KEY (batch_id) REFERENCES batchline.batches(id) ON DELETE CASCADE
batchline.chunks chunks_pkey: PRIMARY KEY (id)
batchline.chunks chunks_status_check: CHECK ((status = ANY (ARRAY['pending'::text, 'leased'::text, 'done'::text, 'cancelled'::text, 'failed'::text])))
batchline.events events_pkey: PRIMARY KEY (id)
batchline.locks locks_pkey: PRIMARY KEY (name)
batchline.schema_migrations schema_migrations_pkey: PRIMARY KEY (version)
batchline.workers workers_pkey: PRIMARY KEY (id)

-- indexes
CREATE UNIQUE INDEX api_keys_pkey ON batchline.api_keys USING btree (id)
CREATE INDEX batches_finished ON batchline.batches USING btree (finished_at) WHERE (finished_at IS NOT NULL)
CREATE UNIQUE INDEX batches_idempotency ON batchline.batches USING btree (tenant, idempotency_key) WHERE (idempotency_key IS NOT NULL)
CREATE INDEX batches_open ON batchline.batches USING btree (id) WHERE (status = ANY (ARRAY['queued'::text, 'running'::text, 'paused'::text]))
CREATE UNIQUE INDEX batches_pkey ON batchline.batches USING btree (id)
CREATE INDEX batches_runnable ON batchline.batches USING btree (priority DESC, served_at NULLS FIRST) WHERE (status = ANY (ARRAY['queued'::text, 'running'::text]))
CREATE INDEX batches_tenant ON batchline.batches USING btree (tenant, id)
CREATE INDEX chunks_batch ON batchline.chunks USING btree (batch_id, id)
CREATE INDEX chunks_leased ON batchline.chunks USING btree (lease_expires_at) WHERE (status = 'leased'::text)
CREATE INDEX chunks_pending ON batchline.chunks USING btree (batch_id, id) WHERE (status = 'pending'::text)
CREATE UNIQUE INDEX chunks_pkey ON batchline.chunks USING btree (id)
CREATE INDEX events_batch ON batchline.events USING btree (batch_id, id)
CREATE UNIQUE INDEX events_pkey ON batchline.events USING btree (id)
CREATE INDEX events_tail ON batchline.events USING btree (txid, id)
CREATE UNIQUE INDEX locks_pkey ON batchline.locks USING btree (name)
CREATE UNIQUE INDEX schema_migrations_pkey ON batchline.schema_migrations USING btree (version)
CREATE UNIQUE INDEX workers_pkey ON batchline.workers USING btree (id)

-- views
items:
 SELECT c.batch_id,
    COALESCE((c.seq0 + ((p.i - 1))::integer), c.seqs[p.i]) AS seq,
    COALESCE((p.entry ->> 's'::text),
        CASE c.status
            WHEN 'leased'::text THEN 'running'::text
            WHEN 'cancelled'::text THEN 'cancelled'::text
            WHEN 'failed'::text THEN 'failed'::text
            ELSE 'pending'::text
        END) AS status,
    COALESCE(((p.entry ->> 'a'::text))::integer, c.attempt) AS attempts,
    p.payload,
    (p.entry -> 'r'::text) AS result,
        CASE
            WHEN (((p.entry ->> 's'::text) IS NULL) AND (c.status = 'failed'::text)) THEN c.error
            ELSE (p.entry -> 'e'::text)
        END AS error
   FROM (batchline.chunks c
     CROSS JOIN LATERAL ROWS FROM(json_array_elements(c.payloads), json_array_elements(c.state)) WITH ORDINALITY p(payload, entry, i))
  WHERE ((p.i > c.skip) AND (COALESCE((p.entry ->> 's'::text), ''::text) <> 'moved'::text));
