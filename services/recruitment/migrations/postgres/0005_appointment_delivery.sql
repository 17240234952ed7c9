-- What the registry answered once recruitment's outbox delivered AppointExpert: the expert, the
-- term and its certificate number, recorded on the decision (article 7(五)).
ALTER TABLE appointment_decisions ADD COLUMN expert_id TEXT NOT NULL DEFAULT '';
ALTER TABLE appointment_decisions ADD COLUMN appointment_id TEXT NOT NULL DEFAULT '';
ALTER TABLE appointment_decisions ADD COLUMN certificate_number TEXT NOT NULL DEFAULT '';
ALTER TABLE appointment_decisions ADD COLUMN term_first TEXT NOT NULL DEFAULT '';
ALTER TABLE appointment_decisions ADD COLUMN term_last TEXT NOT NULL DEFAULT '';
ALTER TABLE appointment_decisions ADD COLUMN delivered_at TEXT NOT NULL DEFAULT '';
CREATE INDEX appointment_decisions_delivery_idx ON appointment_decisions (delivery, id);

-- D21: the registry's answer about an applicant's past, asked at each submission (the latest
-- replaces the earlier), and the reviewer's acknowledgement of a RECENTLY_TERMINATED warning.
-- Flags are the registry's ReapplicationFlag messages, hex-encoded protobuf in a JSON array.
CREATE TABLE reapplication_checks (
    application_id        TEXT PRIMARY KEY NOT NULL REFERENCES applications (id),
    former_expert_id      TEXT NOT NULL,
    flags_json            TEXT NOT NULL,
    checked_at            TEXT NOT NULL,
    acknowledged_by_json  TEXT NOT NULL,
    acknowledged_at       TEXT NOT NULL,
    note                  TEXT NOT NULL
);

-- 续任 (article 11, D11): one case per running term, kept as its contract message
-- (supervision.recruitment.v1.Renewal, hex-encoded protobuf) with the columns it is found by.
-- delivery is '' (nothing to deliver), PENDING (RenewTerm in the outbox) or DELIVERED.
CREATE TABLE renewals (
    id              TEXT PRIMARY KEY NOT NULL,
    expert_id       TEXT NOT NULL,
    appointment_id  TEXT NOT NULL UNIQUE,
    status          TEXT NOT NULL,
    delivery        TEXT NOT NULL,
    body            TEXT NOT NULL,
    created_at      TEXT NOT NULL
);
CREATE INDEX renewals_expert_idx ON renewals (expert_id, id);
CREATE INDEX renewals_delivery_idx ON renewals (delivery, id);
