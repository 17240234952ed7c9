-- 社会监督专家: experts of articles 2, 5, 6 and 14 (D19). Personal values (mobile, e-mail, postal
-- address, bank account, identity numbers) are stored only as ciphertext of the deployment key
-- (`pd1:...`, the *_enc columns); identity documents also as a keyed blind index, which is how
-- an expert is found and kept unique. '' means "not given" in text columns; dates are
-- YYYY-MM-DD (Asia/Shanghai), instants fixed-width UTC RFC 3339; flags are 0 or 1.
CREATE TABLE experts (
    id                         TEXT PRIMARY KEY NOT NULL,
    kind                       TEXT NOT NULL,
    name                       TEXT NOT NULL,
    gender                     TEXT NOT NULL,
    birth_date                 TEXT NOT NULL,
    county                     TEXT NOT NULL,
    outside_jiangmen           TEXT NOT NULL,
    mobile_enc                 TEXT NOT NULL,
    email_enc                  TEXT NOT NULL,
    address_enc                TEXT NOT NULL,
    bank_holder_name           TEXT NOT NULL,
    bank_name                  TEXT NOT NULL,
    bank_branch                TEXT NOT NULL,
    bank_account_enc           TEXT NOT NULL,
    employer_name              TEXT NOT NULL,
    employer_credit_code       TEXT NOT NULL,
    employer_institution_id    TEXT NOT NULL,
    employer_post              TEXT NOT NULL,
    employer_since             TEXT NOT NULL,
    employer_key               TEXT NOT NULL,
    represented_name           TEXT NOT NULL,
    represented_credit_code    TEXT NOT NULL,
    represented_institution_id TEXT NOT NULL,
    professional_title         TEXT NOT NULL,
    status                     TEXT NOT NULL,
    trained                    INTEGER NOT NULL,
    last_confirmed_year        INTEGER NOT NULL,
    application_id             TEXT NOT NULL,
    -- The last day of the current term, maintained with appointments; '' until then.
    current_term_end           TEXT NOT NULL,
    revision                   BIGINT NOT NULL,
    created_at                 TEXT NOT NULL,
    updated_at                 TEXT NOT NULL,
    CONSTRAINT experts_one_locality CHECK ((county = '') <> (outside_jiangmen = ''))
);
CREATE INDEX experts_county_idx ON experts (county, id);
CREATE INDEX experts_status_idx ON experts (status, id);
CREATE INDEX experts_employer_key_idx ON experts (employer_key);

-- Identity documents, the primary one at ordinal 0. A document belongs to one expert only.
CREATE TABLE expert_documents (
    expert_id       TEXT NOT NULL REFERENCES experts (id),
    ordinal         INTEGER NOT NULL,
    kind            TEXT NOT NULL,
    issuing_country TEXT NOT NULL,
    number_enc      TEXT NOT NULL,
    blind_index     TEXT NOT NULL,
    PRIMARY KEY (expert_id, ordinal)
);
CREATE UNIQUE INDEX expert_documents_blind_index_key ON expert_documents (blind_index);

-- Article 5 categories held, each with evidence (JSON) and an optional expiry.
CREATE TABLE expert_categories (
    expert_id        TEXT NOT NULL REFERENCES experts (id),
    ordinal          INTEGER NOT NULL,
    category         TEXT NOT NULL,
    evidence_json    TEXT NOT NULL,
    valid_until      TEXT NOT NULL,
    verified         INTEGER NOT NULL,
    verified_by_json TEXT NOT NULL,
    verified_date    TEXT NOT NULL,
    note             TEXT NOT NULL,
    PRIMARY KEY (expert_id, ordinal)
);
CREATE INDEX expert_categories_category_idx ON expert_categories (category, expert_id);

-- Article 6 conditions as checked.
CREATE TABLE expert_conditions (
    expert_id       TEXT NOT NULL REFERENCES experts (id),
    ordinal         INTEGER NOT NULL,
    condition_code  TEXT NOT NULL,
    evidence_json   TEXT NOT NULL,
    checked_date    TEXT NOT NULL,
    checked_by_json TEXT NOT NULL,
    met             INTEGER NOT NULL,
    note            TEXT NOT NULL,
    PRIMARY KEY (expert_id, ordinal)
);

-- Specialty codes of the national occupational classification, with levels.
CREATE TABLE expert_specialties (
    expert_id TEXT NOT NULL REFERENCES experts (id),
    ordinal   INTEGER NOT NULL,
    code      TEXT NOT NULL,
    level     TEXT NOT NULL,
    note      TEXT NOT NULL,
    PRIMARY KEY (expert_id, ordinal)
);
CREATE INDEX expert_specialties_code_idx ON expert_specialties (code, expert_id);

-- Civil-servant status history (article 10), append-only: an entry holds from valid_from ('' for
-- the open start) until the next; a later entry for the same valid_from corrects an earlier one.
CREATE TABLE expert_civil_servant_entries (
    expert_id        TEXT NOT NULL REFERENCES experts (id),
    seq              INTEGER NOT NULL,
    valid_from       TEXT NOT NULL,
    status           TEXT NOT NULL,
    evidence_json    TEXT NOT NULL,
    recorded_by_json TEXT NOT NULL,
    on_behalf_json   TEXT NOT NULL,
    recorded_at      TEXT NOT NULL,
    PRIMARY KEY (expert_id, seq)
);

-- The change history of experts' data: who, when, why, and each field before and after, masked.
CREATE TABLE expert_changes (
    id             TEXT PRIMARY KEY NOT NULL,
    expert_id      TEXT NOT NULL REFERENCES experts (id),
    at             TEXT NOT NULL,
    actor_json     TEXT NOT NULL,
    reason         TEXT NOT NULL,
    on_behalf_json TEXT NOT NULL,
    changes_json   TEXT NOT NULL
);
CREATE INDEX expert_changes_expert_idx ON expert_changes (expert_id, id);

-- The yearly self-confirmation of each expert's data (D21), one per expert and year.
CREATE TABLE expert_confirmations (
    expert_id      TEXT NOT NULL REFERENCES experts (id),
    year           INTEGER NOT NULL,
    note           TEXT NOT NULL,
    on_behalf_json TEXT NOT NULL,
    actor_json     TEXT NOT NULL,
    confirmed_at   TEXT NOT NULL,
    PRIMARY KEY (expert_id, year)
);
