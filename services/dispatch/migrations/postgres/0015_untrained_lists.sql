-- The draws' lists of untrained candidates (D14), each stored once (issue 12), as the pools
-- are in 0014. Draws in a row from an unchanged pool flag the same candidates, and each used to
-- write its own copy of the list: about 1 MB when a quarter of 100,000 experts are untrained,
-- most of the prepare's record at that size. A draw now names its list by SHA-256, checked on
-- reading. Draws recorded before this migration keep their own list in draws.untrained and an
-- empty untrained_sha256.
CREATE TABLE untrained_lists (
    -- lower-case hex SHA-256 of `list`
    sha256          TEXT PRIMARY KEY,
    -- the candidates' ids as a JSON array of strings, in the order the draw records
    list            TEXT NOT NULL
);
-- Random ids do not compress (see 0013 and 0014).
ALTER TABLE untrained_lists ALTER COLUMN list SET STORAGE EXTERNAL;
ALTER TABLE draws ADD COLUMN untrained_sha256 TEXT NOT NULL DEFAULT '';
