DROP TABLE IF EXISTS agent_memories;
DROP TABLE IF EXISTS workspace_memory;
