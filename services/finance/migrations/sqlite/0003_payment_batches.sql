-- Payment batches (issue 8 item 3; D9, D12).
--
-- A line belongs to at most one live batch: fee_lines.batch_id names it, and a batch takes its
-- lines with one conditional UPDATE (batch_id = '' only), so two drafts can never take the same
-- line. Rejecting or cancelling a batch clears batch_id again; paying it sets paid = 1, after
-- which the line is never changed.
ALTER TABLE fee_lines ADD COLUMN paid INTEGER NOT NULL DEFAULT 0;
CREATE INDEX fee_lines_open_idx ON fee_lines (paying_bureau, fund_source, batch_id, work_date);
CREATE INDEX fee_lines_batch_idx ON fee_lines (batch_id);

-- One row per batch; its items (one per expert, with the fee line ids and the withholding) and
-- approvals are JSON arrays, written whole at each transition.
CREATE TABLE payment_batches (
    id                       TEXT PRIMARY KEY NOT NULL,
    paying_bureau            TEXT NOT NULL,
    payment_month            TEXT NOT NULL,
    fund_source              TEXT NOT NULL,
    status                   TEXT NOT NULL,
    total_gross_fen          BIGINT NOT NULL,
    total_tax_fen            BIGINT NOT NULL,
    total_net_fen            BIGINT NOT NULL,
    requires_second_approval INTEGER NOT NULL,
    items                    TEXT NOT NULL,
    approvals                TEXT NOT NULL,
    prepared_by              TEXT NOT NULL,
    created_at               TEXT NOT NULL,
    submitted_at             TEXT NOT NULL,
    approved_at              TEXT NOT NULL,
    close_reason             TEXT NOT NULL,
    closed_by                TEXT NOT NULL,
    bank_reference           TEXT NOT NULL,
    paid_date                TEXT NOT NULL,
    paid_by                  TEXT NOT NULL
);
CREATE INDEX payment_batches_month_idx ON payment_batches (paying_bureau, payment_month, status);

-- One row per paying bureau and payment month, locked (FOR UPDATE on PostgreSQL) while a batch
-- of the month is drafted or approved, so the month's withholding is computed on a settled total.
CREATE TABLE payment_months (
    paying_bureau TEXT NOT NULL,
    payment_month TEXT NOT NULL,
    PRIMARY KEY (paying_bureau, payment_month)
);
