-- Publications of calls (article 7(一)), applications (申报, article 7(二)) and their materials.
--
-- Personal data: an applicant's identity number, contact details and bank account are stored
-- only encrypted with the deployment's personal-data key (`pd1:` AES-256-GCM, as the registry
-- does); the identity number is found again through its keyed blind index. The rest of the
-- profile (names, categories, conditions, employer, ...) is `profile_pb`: the contract's
-- ApplicantProfile with identity number, contact and bank account cleared.
ALTER TABLE calls ADD COLUMN first_published_on TEXT NOT NULL DEFAULT '';
ALTER TABLE calls ADD COLUMN status_reason TEXT NOT NULL DEFAULT '';

CREATE TABLE call_publications (
    call_id              TEXT COLLATE "C" NOT NULL REFERENCES calls (id),
    ordinal              INTEGER NOT NULL,
    channel              TEXT NOT NULL,
    publish_date         TEXT NOT NULL,
    address              TEXT NOT NULL,
    recorded_by_subject  TEXT NOT NULL,
    recorded_by_role     TEXT NOT NULL,
    recorded_by_bureau   TEXT NOT NULL,
    recorded_at          TEXT NOT NULL,
    PRIMARY KEY (call_id, ordinal)
);

CREATE TABLE applications (
    id                   TEXT COLLATE "C" PRIMARY KEY,
    call_id              TEXT COLLATE "C" NOT NULL REFERENCES calls (id),
    -- The APPLICANT user who owns it; '' when staff entered it on a paper application.
    owner_subject        TEXT NOT NULL,
    name                 TEXT NOT NULL,
    profile_pb           BYTEA NOT NULL,
    identity_type        TEXT NOT NULL,
    identity_country     TEXT NOT NULL,
    identity_number_enc  TEXT NOT NULL,
    identity_blind_index TEXT NOT NULL,
    contact_enc          TEXT NOT NULL,
    bank_account_enc     TEXT NOT NULL,
    replaces_expert_id   TEXT NOT NULL,
    status               TEXT NOT NULL,
    attestation_json     TEXT NOT NULL,
    on_behalf_json       TEXT NOT NULL,
    submission_count     INTEGER NOT NULL,
    submitted_at         TEXT NOT NULL,
    created_by_subject   TEXT NOT NULL,
    created_by_role      TEXT NOT NULL,
    created_by_bureau    TEXT NOT NULL,
    revision             BIGINT NOT NULL,
    created_at           TEXT NOT NULL,
    updated_at           TEXT NOT NULL
);
CREATE INDEX applications_call_idx ON applications (call_id, id);
CREATE INDEX applications_owner_idx ON applications (owner_subject, id);
CREATE INDEX applications_identity_idx ON applications (identity_blind_index);

-- Materials: content kept in the database, at most 10 MiB (10,485,760 bytes) each.
CREATE TABLE materials (
    id                   TEXT COLLATE "C" PRIMARY KEY,
    application_id       TEXT COLLATE "C" NOT NULL REFERENCES applications (id),
    kind                 TEXT NOT NULL,
    category             TEXT NOT NULL,
    condition_code       TEXT NOT NULL,
    file_name            TEXT NOT NULL,
    media_type           TEXT NOT NULL,
    size_bytes           BIGINT NOT NULL,
    sha256               TEXT NOT NULL,
    description          TEXT NOT NULL,
    content              BYTEA NOT NULL,
    uploaded_by_subject  TEXT NOT NULL,
    uploaded_by_role     TEXT NOT NULL,
    uploaded_by_bureau   TEXT NOT NULL,
    uploaded_at          TEXT NOT NULL,
    removed              INTEGER NOT NULL,
    CONSTRAINT materials_size CHECK (size_bytes > 0 AND size_bytes <= 10485760)
);
CREATE INDEX materials_application_idx ON materials (application_id, id);
