-- 征集通知: recruitment calls of article 7(一). Lists are JSON arrays of contract names/codes.
CREATE TABLE calls (
    id                 TEXT COLLATE "C" PRIMARY KEY,
    year               INTEGER NOT NULL,
    title              TEXT NOT NULL,
    body               TEXT NOT NULL,
    categories_json    TEXT NOT NULL,
    specialties_json   TEXT NOT NULL,
    industries_json    TEXT NOT NULL,
    window_start       TEXT NOT NULL,
    window_end         TEXT NOT NULL,
    materials_json     TEXT NOT NULL,
    status             TEXT NOT NULL,
    edition_number     INTEGER NOT NULL,
    created_by_subject TEXT NOT NULL,
    created_by_role    TEXT NOT NULL,
    created_by_bureau  TEXT NOT NULL,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL,
    CONSTRAINT calls_window CHECK (window_start < window_end)
);
CREATE INDEX calls_year_idx ON calls (year, id);
