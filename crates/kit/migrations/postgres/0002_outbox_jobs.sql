-- Calls to other services, written in the same transaction as the change that causes them and
-- delivered by the relay until the callee acknowledges.
CREATE TABLE kit_outbox (
    id              BIGSERIAL PRIMARY KEY,
    destination     TEXT NOT NULL,
    method          TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    payload         BYTEA NOT NULL,
    actor_json      TEXT NOT NULL,
    trace_context   TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    delivered_at    TEXT,
    last_error      TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX kit_outbox_key ON kit_outbox (destination, method, idempotency_key);
CREATE INDEX kit_outbox_due_idx ON kit_outbox (next_attempt_at) WHERE delivered_at IS NULL;

-- Periodic jobs run once across replicas: whoever holds a job's lease runs it.
CREATE TABLE kit_job_leases (
    name   TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until  TEXT NOT NULL
);
