-- Files attached to a report (through its assignment) or a submission: PDF, JPEG or PNG up to
-- 10 MiB, with their SHA-256. Never changed once stored.
CREATE TABLE attachments (
    id TEXT PRIMARY KEY,
    assignment_id TEXT NOT NULL DEFAULT '',
    submission_id TEXT NOT NULL DEFAULT '',
    file_name TEXT NOT NULL,
    media_type TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    content BYTEA NOT NULL,
    uploaded_by_subject TEXT NOT NULL,
    uploaded_by_role TEXT NOT NULL,
    uploaded_at TEXT NOT NULL
);
CREATE INDEX attachments_assignment_idx ON attachments (assignment_id);
CREATE INDEX attachments_submission_idx ON attachments (submission_id);
