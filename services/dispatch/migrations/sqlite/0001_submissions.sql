-- Submissions of article 8(二)(三): experts' feedback, tip-offs and violation reports, and the
-- counties' reports to the city (D21), always routed to the city bureau.
CREATE TABLE submissions (
    id                TEXT PRIMARY KEY NOT NULL,
    kind              TEXT NOT NULL,
    expert_id         TEXT NOT NULL,
    submitting_bureau TEXT NOT NULL,
    source_party      TEXT NOT NULL,
    institution_id    TEXT NOT NULL,
    subject           TEXT NOT NULL,
    content           TEXT NOT NULL,
    status            TEXT NOT NULL,
    submitted_by_subject TEXT NOT NULL,
    submitted_by_role    TEXT NOT NULL,
    submitted_by_bureau  TEXT NOT NULL,
    on_behalf_channel    TEXT NOT NULL,
    on_behalf_received   TEXT NOT NULL,
    on_behalf_note       TEXT NOT NULL,
    submitted_at      TEXT NOT NULL,
    updated_at        TEXT NOT NULL
);
CREATE INDEX submissions_expert_idx ON submissions (expert_id, id);
CREATE INDEX submissions_bureau_idx ON submissions (submitting_bureau, id);
