-- 劳务费 fee lines of article 10, one per session worked (and reversals, never edits), as the
-- contract's FeeLine. Money is integer fen; dates YYYY-MM-DD (Asia/Shanghai).
CREATE TABLE fee_lines (
    id                   TEXT COLLATE "C" PRIMARY KEY,
    assignment_id        TEXT NOT NULL,
    revision             INTEGER NOT NULL,
    task_id              TEXT NOT NULL,
    task_number          TEXT NOT NULL,
    expert_id            TEXT NOT NULL,
    paying_bureau        TEXT NOT NULL,
    fund_source          TEXT NOT NULL,
    work_date            TEXT NOT NULL,
    half_day             TEXT NOT NULL,
    start_time           TEXT NOT NULL,
    minutes              INTEGER NOT NULL,
    class_hours          INTEGER NOT NULL,
    billable_class_hours INTEGER NOT NULL,
    rate_fen             BIGINT NOT NULL,
    basis                TEXT NOT NULL,
    rounding             TEXT NOT NULL,
    amount_fen           BIGINT NOT NULL,
    kind                 TEXT NOT NULL,
    reverses_line_id     TEXT NOT NULL,
    reversal_cause       TEXT NOT NULL,
    zero_reason          TEXT NOT NULL,
    zero_detail          TEXT NOT NULL,
    edition_number       INTEGER NOT NULL,
    batch_id             TEXT NOT NULL,
    created_at           TEXT NOT NULL
);
CREATE INDEX fee_lines_ledger_idx ON fee_lines (paying_bureau, fund_source, work_date);
CREATE INDEX fee_lines_assignment_idx ON fee_lines (assignment_id, revision);

-- Every export written. Files are returned once and not kept (they may hold identity numbers
-- and accounts); the SHA-256 stays for reconciliation.
CREATE TABLE exports (
    id                TEXT COLLATE "C" PRIMARY KEY,
    kind              TEXT NOT NULL,
    format            TEXT NOT NULL,
    payment_batch_id  TEXT NOT NULL,
    paying_bureau     TEXT NOT NULL,
    month             TEXT NOT NULL,
    expert_id         TEXT NOT NULL,
    year              INTEGER NOT NULL,
    file_name         TEXT NOT NULL,
    size_bytes        BIGINT NOT NULL,
    sha256            TEXT NOT NULL,
    row_count         INTEGER NOT NULL,
    total_fen         BIGINT NOT NULL,
    created_by_subject TEXT NOT NULL,
    created_by_role    TEXT NOT NULL,
    created_by_bureau  TEXT NOT NULL,
    created_at        TEXT NOT NULL
);
CREATE INDEX exports_bureau_idx ON exports (paying_bureau, id);
