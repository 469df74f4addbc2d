DROP TABLE IF EXISTS events;
DROP TABLE IF EXISTS global_secrets;
DROP TABLE IF EXISTS workspace_secrets;
DROP TABLE IF EXISTS canvas_sessions;
DROP TABLE IF EXISTS auth_tokens;
DROP TABLE IF EXISTS workspaces;
