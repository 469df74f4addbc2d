DROP TABLE IF EXISTS workspace_plugins;
DROP TABLE IF EXISTS org_plugin_allowlist;
DROP TABLE IF EXISTS workspace_channels;
DROP TABLE IF EXISTS workspace_schedules;
DROP INDEX IF EXISTS workspaces_org_node_idx;
ALTER TABLE workspaces DROP COLUMN IF EXISTS org_node, DROP COLUMN IF EXISTS org_template;
