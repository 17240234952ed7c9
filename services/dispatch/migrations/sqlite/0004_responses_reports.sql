-- Responses (D3, D4, D16), replacements (step 5, D17) and reports (article 8).
--
-- An answer is kept on its assignment as JSON (kind, reason or relation, detail, received time,
-- who entered it and on whose behalf); a vacancy names the assignment that filled it and the
-- filler the one it replaced; the promotion and the continued walk are recorded on the draw.
ALTER TABLE assignments ADD COLUMN response TEXT NOT NULL DEFAULT '';
ALTER TABLE assignments ADD COLUMN decline_deadline TEXT NOT NULL DEFAULT '';
ALTER TABLE assignments ADD COLUMN replaces_assignment_id TEXT NOT NULL DEFAULT '';
ALTER TABLE assignments ADD COLUMN replaced_by_assignment_id TEXT NOT NULL DEFAULT '';
ALTER TABLE assignments ADD COLUMN cancel_reason TEXT NOT NULL DEFAULT '';
ALTER TABLE assignments ADD COLUMN worked_sessions TEXT NOT NULL DEFAULT '[]';
ALTER TABLE assignments ADD COLUMN report_id TEXT NOT NULL DEFAULT '';
ALTER TABLE assignments ADD COLUMN fee_revision INTEGER NOT NULL DEFAULT 0;

-- One report per assignment. The content is the contract's ReportContent, encoded (hex); the
-- sessions, corrections and actors are JSON. Each revision sent to finance is in the outbox.
CREATE TABLE reports (
    id            TEXT PRIMARY KEY NOT NULL,
    assignment_id TEXT NOT NULL UNIQUE REFERENCES assignments (id),
    task_id       TEXT NOT NULL,
    expert_id     TEXT NOT NULL,
    status        TEXT NOT NULL,
    content       TEXT NOT NULL,
    sessions      TEXT NOT NULL,
    revision      INTEGER NOT NULL,
    submitted_by  TEXT NOT NULL,
    on_behalf     TEXT NOT NULL,
    submit_time   TEXT NOT NULL,
    accepted_by   TEXT NOT NULL,
    accept_time   TEXT NOT NULL,
    corrections   TEXT NOT NULL,
    void_reason   TEXT NOT NULL,
    voided_by     TEXT NOT NULL,
    void_time     TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
