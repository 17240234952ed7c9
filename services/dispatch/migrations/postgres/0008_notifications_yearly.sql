-- Notifications (in-app inbox first, channel pluggable): written PENDING in the transaction of
-- the event that causes them, then handed to their channel by the delivery job (DELIVERED or,
-- after repeated failures, FAILED); the recipient's acknowledgement makes them READ, D5's
-- evidence of delivery.
CREATE TABLE notifications (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    recipient_expert_id TEXT NOT NULL DEFAULT '',
    recipient_bureau TEXT NOT NULL DEFAULT '',
    task_id TEXT NOT NULL DEFAULT '',
    assignment_id TEXT NOT NULL DEFAULT '',
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    channel TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    delivered_at TEXT NOT NULL DEFAULT '',
    read_at TEXT NOT NULL DEFAULT '',
    read_by_subject TEXT NOT NULL DEFAULT ''
);
CREATE INDEX notifications_expert_idx ON notifications (recipient_expert_id, created_at);
CREATE INDEX notifications_bureau_idx ON notifications (recipient_bureau, created_at);
CREATE INDEX notifications_state_idx ON notifications (state, created_at);
CREATE INDEX notifications_assignment_idx ON notifications (assignment_id);

-- The D5 yearly classification of each expert dispatch counted, as last delivered to the
-- registry (a new revision whenever a recount changes it).
CREATE TABLE yearly_acceptances (
    expert_id TEXT NOT NULL,
    year BIGINT NOT NULL,
    revision BIGINT NOT NULL,
    classification TEXT NOT NULL,
    acceptances BIGINT NOT NULL,
    non_acceptances BIGINT NOT NULL,
    neutral_outcomes BIGINT NOT NULL,
    computed_at TEXT NOT NULL,
    PRIMARY KEY (expert_id, year)
);
CREATE INDEX yearly_acceptances_year_idx ON yearly_acceptances (year, expert_id);
