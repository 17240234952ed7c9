-- Draws (抽取, ARCHITECTURE.md "The draw"; D8, D14, D15, D18) and the assignments they make.
--
-- A draw row is written at prepare (frozen list, its hash and count, every exclusion with its
-- reason codes, the server seed kept secret and its published commitment), co-signed once by the
-- witness, and completed once at execute (seed revealed, the whole order with full tickets, the
-- walk); each step changes it only from the state before (`WHERE status = ...`), never after.
CREATE TABLE draws (
    id                    TEXT PRIMARY KEY NOT NULL,
    task_id               TEXT NOT NULL REFERENCES tasks (id),
    -- The task while the draw is live: one live initial draw per task.
    live_key              TEXT NOT NULL UNIQUE,
    kind                  TEXT NOT NULL,
    status                TEXT NOT NULL,
    algorithm             TEXT NOT NULL,
    edition_number        INTEGER NOT NULL,
    team_size             INTEGER NOT NULL,
    backup_count          INTEGER NOT NULL,
    frozen_list           TEXT NOT NULL,
    frozen_list_sha256    TEXT NOT NULL,
    candidate_count       INTEGER NOT NULL,
    pool_count            INTEGER NOT NULL,
    exclusions            TEXT NOT NULL,
    untrained             TEXT NOT NULL,
    server_seed           TEXT NOT NULL,
    seed_commitment       TEXT NOT NULL,
    dice_digits           TEXT NOT NULL,
    draw_order            TEXT NOT NULL,
    walk                  TEXT NOT NULL,
    relaxations           TEXT NOT NULL,
    next_position         INTEGER NOT NULL,
    operator_subject      TEXT NOT NULL,
    operator_role         TEXT NOT NULL,
    operator_bureau       TEXT NOT NULL,
    witness_subject       TEXT NOT NULL,
    witness_role          TEXT NOT NULL,
    witness_bureau        TEXT NOT NULL,
    prepared_at           TEXT NOT NULL,
    witnessed_at          TEXT NOT NULL,
    executed_at           TEXT NOT NULL
);
CREATE INDEX draws_task_idx ON draws (task_id, id);

-- One expert's place on one task.
CREATE TABLE assignments (
    id          TEXT PRIMARY KEY NOT NULL,
    task_id     TEXT NOT NULL REFERENCES tasks (id),
    draw_id     TEXT NOT NULL REFERENCES draws (id),
    expert_id   TEXT NOT NULL,
    position    INTEGER NOT NULL,
    role        TEXT NOT NULL,
    status      TEXT NOT NULL,
    trained     INTEGER NOT NULL,
    notified_at TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    UNIQUE (draw_id, expert_id)
);
CREATE INDEX assignments_task_idx ON assignments (task_id, position, id);
CREATE INDEX assignments_expert_idx ON assignments (expert_id, id);

-- The fence of step 6: a primary (or promoted backup) holds one row per session of its task, and
-- this index keeps an expert's half-day to one task, whatever bureau or replica draws.
CREATE TABLE bookings (
    expert_id     TEXT NOT NULL,
    session_date  TEXT NOT NULL,
    half_day      TEXT NOT NULL,
    assignment_id TEXT NOT NULL REFERENCES assignments (id),
    task_id       TEXT NOT NULL
);
CREATE UNIQUE INDEX bookings_slot_key ON bookings (expert_id, session_date, half_day);
CREATE INDEX bookings_date_idx ON bookings (session_date, half_day);
