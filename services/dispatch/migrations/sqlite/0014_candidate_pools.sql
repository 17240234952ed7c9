-- The pools draws are frozen from, each stored once (issue 12); see the PostgreSQL migration of
-- the same number for the why. A draw's frozen list is its pool without its excluded experts,
-- rebuilt on reading and checked against frozen_list_sha256. Draws recorded before this
-- migration keep their frozen_list and an empty pool_list_sha256.
CREATE TABLE candidate_pools (
    sha256          TEXT PRIMARY KEY,
    list            TEXT NOT NULL,
    expert_count    INTEGER NOT NULL
);
ALTER TABLE draws ADD COLUMN pool_list_sha256 TEXT NOT NULL DEFAULT '';
