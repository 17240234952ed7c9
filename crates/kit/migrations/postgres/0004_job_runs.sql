-- One row per run of a periodic job, by the replica that held its lease: when it started and, once
-- it ended, when it ended and how ("done", or "lost-lease" when the run was stopped because the
-- lease could not be renewed). Runs of one job never overlap; the scale-out test checks it, and
-- operators read it to see which replica ran what. Rows older than 30 days are pruned by the runner.
CREATE TABLE kit_job_runs (
    id       TEXT PRIMARY KEY NOT NULL,
    name     TEXT NOT NULL,
    holder   TEXT NOT NULL,
    started  TEXT NOT NULL,
    finished TEXT,
    outcome  TEXT
);
CREATE INDEX kit_job_runs_name_started_idx ON kit_job_runs (name, started);
