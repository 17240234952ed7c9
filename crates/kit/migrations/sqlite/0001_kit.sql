-- Tables every service keeps for the kit: idempotency keys and the audit chain.

-- One row per (caller, method, request_id), written in the same transaction as the effect.
CREATE TABLE kit_idempotency_keys (
    subject      TEXT NOT NULL,
    method       TEXT NOT NULL,
    request_id   TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    response     BLOB,
    created_at   TEXT NOT NULL,
    PRIMARY KEY (subject, method, request_id)
);
CREATE INDEX kit_idempotency_keys_created_idx ON kit_idempotency_keys (created_at);

-- The audit chain: each entry's hash covers its content and the previous entry's hash.
CREATE TABLE kit_audit_log (
    seq           INTEGER PRIMARY KEY NOT NULL,
    at            TEXT NOT NULL,
    caller_subject TEXT NOT NULL,
    caller_role   TEXT NOT NULL,
    actor_subject TEXT NOT NULL,
    actor_role    TEXT NOT NULL,
    actor_bureau  TEXT NOT NULL,
    method        TEXT NOT NULL,
    request_id    TEXT NOT NULL,
    entity_type   TEXT NOT NULL,
    entity_id     TEXT NOT NULL,
    action        TEXT NOT NULL,
    before_json   TEXT NOT NULL,
    after_json    TEXT NOT NULL,
    prev_hash     TEXT NOT NULL,
    hash          TEXT NOT NULL
);

-- The chain head, locked by every append so replicas never fork the chain.
CREATE TABLE kit_audit_head (
    id   INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO kit_audit_head (id, seq, hash) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
