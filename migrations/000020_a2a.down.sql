DROP TABLE IF EXISTS activity_log;
DROP TABLE IF EXISTS delegations;
DROP TABLE IF EXISTS workspace_token_usage;
