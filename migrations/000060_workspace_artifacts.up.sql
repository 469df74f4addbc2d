-- One Cloudflare Artifacts repo per workspace (CONTRACT §18). Only the
-- credential-stripped remote URL is kept: the CHECK refuses any URL whose
-- authority carries user-info, so a credential can never be stored even if
-- a caller forgets to strip it.
CREATE TABLE workspace_artifacts (
    id           uuid PRIMARY KEY,
    workspace_id uuid NOT NULL UNIQUE REFERENCES workspaces (id) ON DELETE CASCADE,
    cf_repo_name text NOT NULL CHECK (cf_repo_name ~ '^[a-zA-Z0-9][a-zA-Z0-9_-]{0,62}$'),
    cf_namespace text NOT NULL CHECK (cf_namespace <> ''),
    description  text NOT NULL DEFAULT '',
    remote_url   text NOT NULL DEFAULT '' CHECK (remote_url !~ '^[^:/?#]+://[^/?#]*@'),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    -- A repo belongs to at most one workspace.
    UNIQUE (cf_namespace, cf_repo_name)
);
