-- Core schema: workspaces (the org tree), credentials, secrets and stored events.

CREATE TABLE workspaces (
    id                   uuid PRIMARY KEY,
    name                 text NOT NULL,
    role                 text NOT NULL DEFAULT '',
    tier                 smallint NOT NULL DEFAULT 2 CHECK (tier BETWEEN 1 AND 4),
    runtime              text NOT NULL DEFAULT 'molecule-agent',
    status               text NOT NULL,
    parent_id            uuid REFERENCES workspaces (id),
    url                  text NOT NULL DEFAULT '',
    agent_card           jsonb,
    active_tasks         integer NOT NULL DEFAULT 0,
    current_task         text NOT NULL DEFAULT '',
    uptime_seconds       bigint NOT NULL DEFAULT 0,
    last_heartbeat_at    timestamptz,
    last_error_rate      double precision NOT NULL DEFAULT 0,
    last_sample_error    text NOT NULL DEFAULT '',
    external             boolean NOT NULL DEFAULT false,
    workspace_dir        text NOT NULL DEFAULT '',
    workspace_access     text NOT NULL DEFAULT 'none'
                         CHECK (workspace_access IN ('none', 'read_only', 'read_write')),
    max_concurrent_tasks integer NOT NULL DEFAULT 1,
    x                    double precision NOT NULL DEFAULT 0,
    y                    double precision NOT NULL DEFAULT 0,
    collapsed            boolean NOT NULL DEFAULT false,
    template             text NOT NULL DEFAULT '',
    instance_id          text NOT NULL DEFAULT '',
    budget_limit         bigint CHECK (budget_limit >= 0),
    monthly_spend        bigint NOT NULL DEFAULT 0,
    status_changed_at    timestamptz NOT NULL DEFAULT now(),
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    removed_at           timestamptz
);

CREATE INDEX workspaces_parent_idx ON workspaces (parent_id) WHERE status <> 'removed';
CREATE INDEX workspaces_liveness_idx ON workspaces (status, last_heartbeat_at);

-- Bearer tokens of workspaces and org API tokens share one table so that
-- authenticating any bearer is one indexed lookup.
CREATE TABLE auth_tokens (
    id           uuid PRIMARY KEY,
    kind         text NOT NULL CHECK (kind IN ('workspace', 'org')),
    workspace_id uuid REFERENCES workspaces (id) ON DELETE CASCADE,
    name         text NOT NULL DEFAULT '',
    token_hash   bytea NOT NULL UNIQUE,
    prefix       text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz,
    CHECK ((kind = 'workspace') = (workspace_id IS NOT NULL))
);

CREATE INDEX auth_tokens_live_ws_idx ON auth_tokens (workspace_id, created_at DESC)
    WHERE revoked_at IS NULL;

-- Canvas sessions: a cookie minted from an admin or org token. A session made
-- from an org token dies with it.
CREATE TABLE canvas_sessions (
    id              uuid PRIMARY KEY,
    token_hash      bytea NOT NULL UNIQUE,
    source_token_id uuid REFERENCES auth_tokens (id) ON DELETE CASCADE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    revoked_at      timestamptz
);

CREATE TABLE workspace_secrets (
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    key          text NOT NULL,
    sealed       bytea NOT NULL,
    key_id       text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, key)
);

CREATE TABLE global_secrets (
    key        text PRIMARY KEY,
    sealed     bytea NOT NULL,
    key_id     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Stored events (record-and-broadcast). No foreign key: events outlive the
-- workspaces they describe until retention prunes them.
CREATE TABLE events (
    id           bigserial PRIMARY KEY,
    event_type   text NOT NULL,
    workspace_id uuid,
    payload      jsonb NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX events_workspace_idx ON events (workspace_id, id);
CREATE INDEX events_created_idx ON events (created_at);
