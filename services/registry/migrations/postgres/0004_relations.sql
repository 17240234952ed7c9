-- 回避关系登记: relations between experts and institutions or people there (article 9(六), D19,
-- D20; DOMAIN.md 5.9). An institution is named by its id, or by organisation name and credit code
-- when not registered (matched by credit code at query time). Nothing is deleted: a relation is
-- ended on a date (valid_to) or marked recorded in error. '' means "not given"; dates are
-- YYYY-MM-DD (Asia/Shanghai), instants fixed-width UTC RFC 3339; flags are 0 or 1.
CREATE TABLE expert_relations (
    id                TEXT COLLATE "C" PRIMARY KEY,
    expert_id         TEXT COLLATE "C" NOT NULL REFERENCES experts (id),
    relation_type     TEXT NOT NULL,
    institution_id    TEXT COLLATE "C" NOT NULL,
    org_name          TEXT NOT NULL,
    org_credit_code   TEXT NOT NULL,
    counterpart_name  TEXT NOT NULL,
    counterpart_role  TEXT NOT NULL,
    valid_from        TEXT NOT NULL,
    valid_to          TEXT NOT NULL,
    source            TEXT NOT NULL,
    source_ref        TEXT NOT NULL,
    evidence_json     TEXT NOT NULL,
    note              TEXT NOT NULL,
    recorded_by_json  TEXT NOT NULL,
    on_behalf_json    TEXT NOT NULL,
    recorded_at       TEXT NOT NULL,
    recorded_in_error INTEGER NOT NULL,
    end_reason        TEXT NOT NULL
);
CREATE INDEX expert_relations_expert_idx ON expert_relations (expert_id, id);
CREATE INDEX expert_relations_institution_idx ON expert_relations (institution_id, id);
CREATE INDEX expert_relations_credit_code_idx ON expert_relations (org_credit_code, id);

-- Conflicts from experts' profiles (employer, represented unit) are looked up by institution.
CREATE INDEX experts_employer_institution_idx ON experts (employer_institution_id);
CREATE INDEX experts_represented_institution_idx ON experts (represented_institution_id);
CREATE INDEX experts_represented_credit_code_idx ON experts (represented_credit_code);

-- The draw pool reads the status changes recorded for a later date.
CREATE INDEX expert_status_changes_effective_idx ON expert_status_changes (effective_date);
