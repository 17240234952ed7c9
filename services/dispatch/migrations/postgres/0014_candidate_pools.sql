-- The pools draws are frozen from, each stored once (issue 12). A draw's frozen list is its pool
-- without its excluded experts, both of which the draw records, so a draw now names its pool by
-- SHA-256 instead of holding its own copy of every candidate's id (3.7 MB at 100,000, about
-- 50 ms to write per prepare). Draws in a row from an unchanged registry share one pool;
-- another institution's conflicts or another half-day's bookings change only the exclusions.
-- The list is rebuilt on reading and checked against frozen_list_sha256, the commitment the
-- draw published, so a wrong rebuild is an error and never a different list. Draws recorded
-- before this migration keep their frozen_list and an empty pool_list_sha256.
CREATE TABLE candidate_pools (
    -- lower-case hex SHA-256 of `list`
    sha256          TEXT PRIMARY KEY,
    -- the pool's expert ids, sorted bytewise, one per line with '\n' after each (the frozen
    -- list's own format)
    list            TEXT NOT NULL,
    expert_count    INTEGER NOT NULL
);
-- Random ids do not compress (see 0013). Nor does a draw's list of untrained candidates (about
-- 1 MB when a quarter of 100,000 are untrained): pglz spent about 40 ms of each prepare
-- failing to shrink it before storing it as it was.
ALTER TABLE candidate_pools ALTER COLUMN list SET STORAGE EXTERNAL;
ALTER TABLE draws ALTER COLUMN untrained SET STORAGE EXTERNAL;
ALTER TABLE draws ADD COLUMN pool_list_sha256 TEXT NOT NULL DEFAULT '';
