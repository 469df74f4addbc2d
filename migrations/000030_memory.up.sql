-- Key-value memory (§9): one row per (workspace, key), versioned for
-- optimistic locking. Expired rows are invisible to reads and pruned by
-- the retention loop.
CREATE TABLE workspace_memory (
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    key          text NOT NULL,
    value        jsonb NOT NULL,
    version      bigint NOT NULL DEFAULT 1 CHECK (version >= 1),
    expires_at   timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, key)
);

CREATE INDEX workspace_memory_expiry_idx ON workspace_memory (expires_at)
    WHERE expires_at IS NOT NULL;

-- Agent memories (§9): free text with a scope and a namespace, searched with
-- Postgres full-text search over a stored tsvector.
CREATE TABLE agent_memories (
    id           uuid PRIMARY KEY,
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    content      text NOT NULL,
    scope        text NOT NULL CHECK (scope IN ('LOCAL', 'TEAM', 'GLOBAL')),
    namespace    text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    search       tsvector GENERATED ALWAYS AS (to_tsvector('english', content)) STORED
);

CREATE INDEX agent_memories_ws_idx ON agent_memories (workspace_id, created_at DESC);
CREATE INDEX agent_memories_scope_idx ON agent_memories (scope, created_at DESC);
CREATE INDEX agent_memories_search_idx ON agent_memories USING gin (search);
