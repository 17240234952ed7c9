-- A draw's frozen list is stored out of line without compression (issue 12). Its ids are
-- random hex, which PostgreSQL's default compression (pglz) cannot shrink: at 100,000 candidates
-- (3.7 MB) it spent about 100 ms per prepare trying, then stored the list uncompressed anyway.
-- EXTERNAL stores it the same way at once (about 20 ms), and reads it back without the attempt.
-- PostgreSQL only: SQLite never compresses. Draws already stored keep their storage.
ALTER TABLE draws ALTER COLUMN frozen_list SET STORAGE EXTERNAL;
