-- Supervision tasks (article 7(六), 8(一); DOMAIN.md 5.11): the dispatching bureau, the
-- institution, the activity and its sessions, the team wanted, and the exceptions the city
-- approves (D7, D13, D15).
CREATE TABLE tasks (
    id                   TEXT PRIMARY KEY NOT NULL,
    task_number          TEXT NOT NULL UNIQUE,
    dispatching_bureau   TEXT NOT NULL,
    number_year          INTEGER NOT NULL,
    number_sequence      INTEGER NOT NULL,
    institution_id       TEXT NOT NULL,
    institution_county   TEXT NOT NULL,
    title                TEXT NOT NULL,
    activity_subject     TEXT NOT NULL,
    activity_kind        TEXT NOT NULL,
    activity_reference   TEXT NOT NULL,
    activity_description TEXT NOT NULL,
    mode                 TEXT NOT NULL,
    origin               TEXT NOT NULL,
    origin_submission_id TEXT NOT NULL,
    reporter_expert_id   TEXT NOT NULL,
    team_size            INTEGER NOT NULL,
    backup_count         INTEGER NOT NULL,
    specialties          TEXT NOT NULL,
    fund_source          TEXT NOT NULL,
    urgent_reason        TEXT NOT NULL,
    status               TEXT NOT NULL,
    cancel_reason        TEXT NOT NULL,
    accepted_count       INTEGER NOT NULL,
    edition_number       INTEGER NOT NULL,
    first_session_date   TEXT NOT NULL,
    created_by_subject   TEXT NOT NULL,
    created_by_role      TEXT NOT NULL,
    created_by_bureau    TEXT NOT NULL,
    created_at           TEXT NOT NULL,
    updated_at           TEXT NOT NULL,
    revision             INTEGER NOT NULL,
    UNIQUE (dispatching_bureau, number_year, number_sequence)
);
CREATE INDEX tasks_listing_idx ON tasks (first_session_date, id);
CREATE INDEX tasks_bureau_idx ON tasks (dispatching_bureau, first_session_date, id);
CREATE INDEX tasks_institution_idx ON tasks (institution_id);

-- One half-day slot per row (D2); a task has each date and half-day at most once.
CREATE TABLE task_sessions (
    id            TEXT PRIMARY KEY NOT NULL,
    task_id       TEXT NOT NULL REFERENCES tasks (id),
    session_date  TEXT NOT NULL,
    half_day      TEXT NOT NULL,
    planned_start TEXT NOT NULL,
    planned_end   TEXT NOT NULL,
    UNIQUE (task_id, session_date, half_day)
);
CREATE INDEX task_sessions_date_idx ON task_sessions (session_date, task_id);

-- Exceptions a task needs, requested by the dispatching bureau and approved by the city.
CREATE TABLE task_exceptions (
    task_id             TEXT NOT NULL REFERENCES tasks (id),
    kind                TEXT NOT NULL,
    reason              TEXT NOT NULL,
    reduced_team_size   INTEGER NOT NULL,
    approved_by_subject TEXT NOT NULL,
    approved_by_role    TEXT NOT NULL,
    approved_by_bureau  TEXT NOT NULL,
    approve_reason      TEXT NOT NULL,
    approved_at         TEXT NOT NULL,
    PRIMARY KEY (task_id, kind)
);

-- The last sequence number given to each bureau's tasks in each year: the readable task number
-- `<division code>-<year>-<sequence>` is allocated by an upsert on this row inside the creating
-- transaction, so concurrent creations queue on it and never share or skip a number.
CREATE TABLE task_number_counters (
    dispatching_bureau TEXT NOT NULL,
    number_year        INTEGER NOT NULL,
    last_sequence      INTEGER NOT NULL,
    PRIMARY KEY (dispatching_bureau, number_year)
);
