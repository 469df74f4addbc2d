DROP TABLE IF EXISTS workspace_artifacts;
