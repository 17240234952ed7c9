-- 资格审核 (article 7(三)): verdicts per condition, category and material, and the conclusion.
ALTER TABLE applications ADD COLUMN submitted_by_subject TEXT NOT NULL DEFAULT '';
ALTER TABLE applications ADD COLUMN conclusion_json TEXT NOT NULL DEFAULT '';

CREATE TABLE review_items (
    id                  TEXT PRIMARY KEY NOT NULL,
    application_id      TEXT NOT NULL REFERENCES applications (id),
    -- CONDITION, CATEGORY or MATERIAL; the value is a contract name or a material id.
    target_kind         TEXT NOT NULL,
    target_value        TEXT NOT NULL,
    verdict             TEXT NOT NULL,
    reason              TEXT NOT NULL,
    reviewer_subject    TEXT NOT NULL,
    reviewer_role       TEXT NOT NULL,
    reviewer_bureau     TEXT NOT NULL,
    reviewed_at         TEXT NOT NULL,
    submission_number   INTEGER NOT NULL
);
CREATE INDEX review_items_application_idx ON review_items (application_id, id);
