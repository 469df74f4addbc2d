-- Org templates, schedules, channels and plugins (CONTRACT §14–§17).

-- A workspace created by POST /org/import remembers which template and
-- which node of it made it, so importing the same template again finds it
-- (even after a rename on the canvas) instead of creating a copy.
ALTER TABLE workspaces
    ADD COLUMN org_template text NOT NULL DEFAULT '',
    ADD COLUMN org_node     text NOT NULL DEFAULT '';

CREATE UNIQUE INDEX workspaces_org_node_idx ON workspaces (org_template, org_node)
    WHERE org_template <> '' AND status <> 'removed';

-- Cron schedules (§16). source = template: owned by an org template and
-- rewritten by a re-import; runtime: created through the API and never
-- touched by an import.
CREATE TABLE workspace_schedules (
    id           uuid PRIMARY KEY,
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name         text NOT NULL,
    cron_expr    text NOT NULL,
    timezone     text NOT NULL DEFAULT 'UTC',
    prompt       text NOT NULL,
    enabled      boolean NOT NULL DEFAULT true,
    source       text NOT NULL DEFAULT 'runtime' CHECK (source IN ('template', 'runtime')),
    last_run_at  timestamptz,
    last_status  text NOT NULL DEFAULT '',
    last_error   text NOT NULL DEFAULT '',
    run_count    bigint NOT NULL DEFAULT 0,
    next_run_at  timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX workspace_schedules_ws_idx ON workspace_schedules (workspace_id);
-- A template names each of its schedules once per workspace; the import
-- upserts on this.
CREATE UNIQUE INDEX workspace_schedules_template_idx ON workspace_schedules (workspace_id, name)
    WHERE source = 'template';
-- The scheduler's due scan.
CREATE INDEX workspace_schedules_due_idx ON workspace_schedules (next_run_at) WHERE enabled;

-- Messaging channels (§17). config is a JSON object sealed with the
-- keyring (owner = workspace id, name = "channel:<id>"); it may hold bot
-- tokens. template_key ("slack#0") identifies a template-owned channel
-- across re-imports.
CREATE TABLE workspace_channels (
    id             uuid PRIMARY KEY,
    workspace_id   uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    channel_type   text NOT NULL CHECK (channel_type IN ('slack', 'telegram', 'webhook')),
    config_sealed  bytea NOT NULL,
    key_id         text NOT NULL,
    allowed_users  text[] NOT NULL DEFAULT '{}',
    enabled        boolean NOT NULL DEFAULT true,
    channel_budget bigint CHECK (channel_budget >= 0),
    message_count  bigint NOT NULL DEFAULT 0,
    source         text NOT NULL DEFAULT 'runtime' CHECK (source IN ('template', 'runtime')),
    template_key   text NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX workspace_channels_ws_idx ON workspace_channels (workspace_id);
CREATE UNIQUE INDEX workspace_channels_template_idx ON workspace_channels (workspace_id, template_key)
    WHERE source = 'template';

-- The org's plugin allowlist (§15). org_id is the root workspace of the
-- tree; no rows means every plugin is allowed.
CREATE TABLE org_plugin_allowlist (
    org_id      uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    plugin_name text NOT NULL,
    enabled_by  text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, plugin_name)
);

-- Plugins installed into a workspace's /configs/plugins/<name>.
CREATE TABLE workspace_plugins (
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name         text NOT NULL,
    version      text NOT NULL DEFAULT '',
    source       text NOT NULL,
    sha256       text NOT NULL,
    files        integer NOT NULL DEFAULT 0,
    bytes        bigint NOT NULL DEFAULT 0,
    installed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, name)
);
