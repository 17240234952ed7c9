-- 任用/续任: the terms of experts (articles 7(五), 11; D11) with their certificates, and every
-- status transition with its article (articles 11, 12; D17). A term's certificate is stored VALID,
-- EXPIRED or REVOKED; a VALID one whose term_end has passed reads as EXPIRED. '' means "not given";
-- dates are YYYY-MM-DD (Asia/Shanghai), instants fixed-width UTC RFC 3339.
CREATE TABLE appointments (
    id                      TEXT COLLATE "C" PRIMARY KEY,
    expert_id               TEXT COLLATE "C" NOT NULL REFERENCES experts (id),
    term_number             INTEGER NOT NULL,
    kind                    TEXT NOT NULL,
    decision_date           TEXT NOT NULL,
    term_start              TEXT NOT NULL,
    term_end                TEXT NOT NULL,
    certificate_number      TEXT NOT NULL,
    certificate_status      TEXT NOT NULL,
    application_id          TEXT NOT NULL,
    renewal_id              TEXT NOT NULL,
    previous_appointment_id TEXT NOT NULL,
    end_reason              TEXT NOT NULL,
    ended_date              TEXT NOT NULL,
    edition_number          INTEGER NOT NULL,
    created_at              TEXT NOT NULL
);
CREATE UNIQUE INDEX appointments_expert_term_key ON appointments (expert_id, term_number);
CREATE UNIQUE INDEX appointments_certificate_number_key ON appointments (certificate_number);
CREATE INDEX appointments_term_end_idx ON appointments (term_end, expert_id);

-- The last certificate number issued per year of decision (one row per year, bumped under its
-- row lock, so concurrent appointments never take the same number).
CREATE TABLE certificate_counters (
    year INTEGER PRIMARY KEY NOT NULL,
    last BIGINT NOT NULL
);

-- Status transitions, each also the ExpertStatusChanged event sent to dispatch (D17) under its id.
CREATE TABLE expert_status_changes (
    id                 TEXT COLLATE "C" PRIMARY KEY,
    expert_id          TEXT COLLATE "C" NOT NULL REFERENCES experts (id),
    previous_status    TEXT NOT NULL,
    status             TEXT NOT NULL,
    ground             TEXT NOT NULL,
    effective_date     TEXT NOT NULL,
    at                 TEXT NOT NULL,
    reason             TEXT NOT NULL,
    incident_id        TEXT NOT NULL,
    appointment_id     TEXT NOT NULL,
    certificate_status TEXT NOT NULL,
    actor_json         TEXT NOT NULL,
    evidence_json      TEXT NOT NULL,
    on_behalf_json     TEXT NOT NULL
);
CREATE INDEX expert_status_changes_expert_idx ON expert_status_changes (expert_id, id);
