-- Fee lines from dispatch's revisions (ARCHITECTURE.md "Fees").
--
-- The session each line charges, so a slot's live lines can be re-allocated under the cap;
-- lines written before this column existed charge no known session.
ALTER TABLE fee_lines ADD COLUMN task_session_id TEXT NOT NULL DEFAULT '';
-- A slot's live lines: its charges that no reversal points at.
CREATE INDEX fee_lines_slot_idx ON fee_lines (expert_id, work_date, half_day);
CREATE INDEX fee_lines_reverses_idx ON fee_lines (reverses_line_id);
CREATE INDEX fee_lines_expert_idx ON fee_lines (expert_id, id);

-- The revision held for each assignment: a newer one is applied, an older one ignored.
CREATE TABLE fee_assignments (
    assignment_id  TEXT NOT NULL PRIMARY KEY,
    expert_id      TEXT NOT NULL,
    held_revision  INTEGER NOT NULL,
    updated_at     TEXT NOT NULL
);

-- One row per expert with fee lines, locked (FOR UPDATE on PostgreSQL) while a revision changes
-- the expert's half-day slots, so two revisions sharing a slot never interleave.
CREATE TABLE fee_experts (
    expert_id TEXT NOT NULL PRIMARY KEY
);
