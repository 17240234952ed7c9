-- 培训评价机构: institutions of article 3 (D20: a legal entity has a credit code, a sub-unit a parent).
-- Ids are compared bytewise (COLLATE "C") so keyset paging matches SQLite's order.
CREATE TABLE institutions (
    id          TEXT COLLATE "C" PRIMARY KEY,
    kind        TEXT NOT NULL,
    name        TEXT NOT NULL,
    credit_code TEXT,
    parent_id   TEXT COLLATE "C" REFERENCES institutions (id),
    county      TEXT NOT NULL,
    address     TEXT NOT NULL,
    head        TEXT NOT NULL,
    status      TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    CONSTRAINT institutions_code_or_parent CHECK ((credit_code IS NULL) <> (parent_id IS NULL))
);
CREATE UNIQUE INDEX institutions_credit_code_key ON institutions (credit_code);
CREATE INDEX institutions_county_idx ON institutions (county, id);
