-- Which experts' draw-pool facts changed, and when (issue 12). Dispatch keeps a copy of the pool
-- and asks StreamDrawPool (with `sync`) only for what changed since the read it last applied,
-- instead of streaming every expert for every draw.
--
-- The facts a draw needs are an expert's status, training, employer and represented unit (the
-- experts row), their last term (appointments) and their specialties (expert_specialties).
-- Every change to those rows advances one counter and records the expert at its new value.
-- SQLite runs one writer at a time, so the counter's values are committed in order, and a reader
-- keeps the value it saw as its version: what changed since is every expert recorded above it.
-- (The triggers delete and insert rather than INSERT OR REPLACE: an outer INSERT OR IGNORE would
-- turn a trigger's REPLACE into IGNORE and lose the change.)
CREATE TABLE pool_clock (
    id      INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT INTO pool_clock (id, version) VALUES (1, 1);

CREATE TABLE pool_versions (
    expert_id TEXT PRIMARY KEY NOT NULL,
    version   INTEGER NOT NULL
);
CREATE INDEX pool_versions_version_idx ON pool_versions (version);

-- Marking an expert changed, in one place (as PostgreSQL's pool_versions_mark): inserting into
-- this view advances the counter and records the expert at its new value.
CREATE VIEW pool_touch (expert_id) AS SELECT expert_id FROM pool_versions WHERE 0;
CREATE TRIGGER pool_touch_mark INSTEAD OF INSERT ON pool_touch
BEGIN
    UPDATE pool_clock SET version = version + 1;
    DELETE FROM pool_versions WHERE expert_id = NEW.expert_id;
    INSERT INTO pool_versions (expert_id, version) SELECT NEW.expert_id, version FROM pool_clock;
END;

CREATE TRIGGER experts_pool_insert AFTER INSERT ON experts
BEGIN INSERT INTO pool_touch (expert_id) VALUES (NEW.id); END;
CREATE TRIGGER experts_pool_update AFTER UPDATE OF status, trained, employer_key, employer_institution_id, represented_name, represented_credit_code,
    represented_institution_id ON experts
BEGIN INSERT INTO pool_touch (expert_id) VALUES (NEW.id); END;
CREATE TRIGGER experts_pool_delete AFTER DELETE ON experts
BEGIN INSERT INTO pool_touch (expert_id) VALUES (OLD.id); END;
CREATE TRIGGER appointments_pool_insert AFTER INSERT ON appointments
BEGIN INSERT INTO pool_touch (expert_id) VALUES (NEW.expert_id); END;
CREATE TRIGGER appointments_pool_update AFTER UPDATE ON appointments
BEGIN INSERT INTO pool_touch (expert_id) VALUES (NEW.expert_id); END;
CREATE TRIGGER appointments_pool_delete AFTER DELETE ON appointments
BEGIN INSERT INTO pool_touch (expert_id) VALUES (OLD.expert_id); END;
CREATE TRIGGER expert_specialties_pool_insert AFTER INSERT ON expert_specialties
BEGIN INSERT INTO pool_touch (expert_id) VALUES (NEW.expert_id); END;
CREATE TRIGGER expert_specialties_pool_update AFTER UPDATE ON expert_specialties
BEGIN INSERT INTO pool_touch (expert_id) VALUES (NEW.expert_id); END;
CREATE TRIGGER expert_specialties_pool_delete AFTER DELETE ON expert_specialties
BEGIN INSERT INTO pool_touch (expert_id) VALUES (OLD.expert_id); END;

-- The experts written before this migration.
INSERT INTO pool_versions (expert_id, version) SELECT id, 1 FROM experts;
