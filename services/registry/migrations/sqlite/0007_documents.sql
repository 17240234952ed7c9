-- Evidence files (UploadDocument): category, condition and status evidence, incident referrals,
-- an expert's own statements. Up to 10 MiB of PDF, JPEG or PNG each, kept in the database with
-- their SHA-256; an expert_id of '' is a file uploaded before its expert exists.
CREATE TABLE documents (
    id                  TEXT PRIMARY KEY NOT NULL,
    expert_id           TEXT NOT NULL,
    file_name           TEXT NOT NULL,
    media_type          TEXT NOT NULL,
    size_bytes          BIGINT NOT NULL,
    sha256              TEXT NOT NULL,
    content             BLOB NOT NULL,
    uploaded_by_subject TEXT NOT NULL,
    uploaded_by_role    TEXT NOT NULL,
    uploaded_at         TEXT NOT NULL,
    CONSTRAINT documents_size CHECK (size_bytes > 0 AND size_bytes <= 10485760)
);
CREATE INDEX documents_expert_idx ON documents (expert_id, id);
