-- A2A metering, delegations and the activity log (CONTRACT §6–§8, §11).

-- Token usage per workspace per UTC day. Written by the metering flusher with
-- one batched upsert; estimated_cost_usd keeps six decimals (micro-dollars).
CREATE TABLE workspace_token_usage (
    workspace_id       uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    day                date NOT NULL,
    input_tokens       bigint NOT NULL DEFAULT 0 CHECK (input_tokens >= 0),
    output_tokens      bigint NOT NULL DEFAULT 0 CHECK (output_tokens >= 0),
    call_count         bigint NOT NULL DEFAULT 0 CHECK (call_count >= 0),
    estimated_cost_usd numeric(20, 6) NOT NULL DEFAULT 0 CHECK (estimated_cost_usd >= 0),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, day)
);

CREATE TABLE delegations (
    id              uuid PRIMARY KEY,
    source_id       uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    target_id       uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    task            text NOT NULL,
    idempotency_key text,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'dispatched', 'completed', 'failed')),
    result          text NOT NULL DEFAULT '',
    error           text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- One delegation per (source, key): a retried POST finds the first one.
CREATE UNIQUE INDEX delegations_idempotency_idx ON delegations (source_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX delegations_source_idx ON delegations (source_id, created_at DESC, id);
-- The sweep for delegations interrupted by a restart.
CREATE INDEX delegations_open_idx ON delegations (updated_at)
    WHERE status IN ('pending', 'dispatched');

-- What happened to a workspace. No foreign key, like events: rows are
-- written in batches off the request path, and one vanished workspace must
-- not fail a whole batch.
CREATE TABLE activity_log (
    id            bigserial PRIMARY KEY,
    workspace_id  uuid NOT NULL,
    activity_type text NOT NULL,
    summary       text NOT NULL DEFAULT '',
    caller_id     uuid,
    target_id     uuid,
    method        text NOT NULL DEFAULT '',
    status_code   integer,
    duration_ms   bigint,
    details       jsonb NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX activity_log_workspace_idx ON activity_log (workspace_id, id DESC);
CREATE INDEX activity_log_type_idx ON activity_log (workspace_id, activity_type, id DESC);
