-- 违纪/事件 (articles 9, 12; D4; DOMAIN.md 5.16, 6.8) and the D5 yearly classifications with the
-- article 12(三) retirement proposals they lead to. Each row keeps the contract message it answers
-- with in `body` (hex of its protobuf encoding, which holds no personal data: ids, codes, dates and
-- the bureau's own words); the columns beside it are the ones queries filter and order on.
CREATE TABLE incidents (
    id               TEXT PRIMARY KEY NOT NULL,
    expert_id        TEXT NOT NULL REFERENCES experts (id),
    kind             TEXT NOT NULL,
    status           TEXT NOT NULL,
    reporting_bureau TEXT NOT NULL,
    assignment_id    TEXT NOT NULL,
    body             TEXT NOT NULL
);
CREATE INDEX incidents_expert_idx ON incidents (expert_id, id);

-- One row per expert and calendar year: the highest revision dispatch sent (D5).
CREATE TABLE yearly_acceptances (
    expert_id      TEXT NOT NULL REFERENCES experts (id),
    year           INTEGER NOT NULL,
    revision       INTEGER NOT NULL,
    classification TEXT NOT NULL,
    body           TEXT NOT NULL,
    PRIMARY KEY (expert_id, year)
);

CREATE TABLE retirement_proposals (
    id         TEXT PRIMARY KEY NOT NULL,
    expert_id  TEXT NOT NULL REFERENCES experts (id),
    status     TEXT NOT NULL,
    apply_date TEXT NOT NULL,
    body       TEXT NOT NULL
);
CREATE INDEX retirement_proposals_expert_idx ON retirement_proposals (expert_id, status);
