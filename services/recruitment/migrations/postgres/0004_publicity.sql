-- 公示 (article 7(四), D10), 异议 and 确定任用 (article 7(五)).
-- A batch's status is DRAFT or PUBLISHED; ENDED follows from the clock (00:00 Asia/Shanghai
-- after end_date). Objectors' contact details are stored only encrypted (`pd1:`).
CREATE TABLE publicity_batches (
    id                       TEXT PRIMARY KEY NOT NULL,
    title                    TEXT NOT NULL,
    start_date               TEXT NOT NULL,
    end_date                 TEXT NOT NULL,
    status                   TEXT NOT NULL,
    ends_on_non_working_day  INTEGER NOT NULL,
    warnings_json            TEXT NOT NULL,
    publications_json        TEXT NOT NULL,
    created_by_subject       TEXT NOT NULL,
    created_by_role          TEXT NOT NULL,
    created_by_bureau        TEXT NOT NULL,
    created_at               TEXT NOT NULL
);

-- An application is in at most one batch.
CREATE TABLE publicity_batch_applications (
    application_id  TEXT PRIMARY KEY NOT NULL REFERENCES applications (id),
    batch_id        TEXT NOT NULL REFERENCES publicity_batches (id),
    ordinal         INTEGER NOT NULL
);
CREATE INDEX publicity_batch_applications_batch_idx ON publicity_batch_applications (batch_id, ordinal);

CREATE TABLE objections (
    id                    TEXT PRIMARY KEY NOT NULL,
    application_id        TEXT NOT NULL REFERENCES applications (id),
    batch_id              TEXT NOT NULL REFERENCES publicity_batches (id),
    received_at           TEXT NOT NULL,
    channel               INTEGER NOT NULL,
    objector_name         TEXT NOT NULL,
    objector_contact_enc  TEXT NOT NULL,
    content               TEXT NOT NULL,
    status                TEXT NOT NULL,
    findings              TEXT NOT NULL,
    recorded_by_json      TEXT NOT NULL,
    resolved_by_json      TEXT NOT NULL,
    resolved_at           TEXT NOT NULL
);
CREATE INDEX objections_application_idx ON objections (application_id, id);

-- One decision per application: a retry never appoints twice.
CREATE TABLE appointment_decisions (
    id               TEXT PRIMARY KEY NOT NULL,
    application_id   TEXT NOT NULL UNIQUE REFERENCES applications (id),
    decision_date    TEXT NOT NULL,
    term_start       TEXT NOT NULL,
    delivery         TEXT NOT NULL,
    decided_by_json  TEXT NOT NULL,
    decided_at       TEXT NOT NULL
);
