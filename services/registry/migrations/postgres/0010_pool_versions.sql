-- Which experts' draw-pool facts changed, and in which transaction (issue 12). Dispatch keeps a
-- copy of the pool and asks StreamDrawPool (with `sync`) only for what changed since the read it
-- last applied, instead of streaming 100,000 experts for every draw.
--
-- The facts a draw needs are an expert's status, training, employer and represented unit (the
-- experts row), their last term (appointments) and their specialties (expert_specialties).
-- Every change to those rows records the expert with the id of the writing transaction. A reader
-- keeps its snapshot (`pg_current_snapshot()`) as its version; what changed since is every
-- expert whose transaction that snapshot did not see. No counter is shared between writers, so
-- this adds no lock and no ordering between transactions that change different experts.
CREATE TABLE pool_versions (
    expert_id TEXT COLLATE "C" PRIMARY KEY,
    -- The last transaction that changed one of the expert's pool facts.
    txid      xid8 NOT NULL
);
CREATE INDEX pool_versions_txid_idx ON pool_versions (txid);

-- A second change in the same transaction leaves the row as it is.
CREATE FUNCTION pool_versions_mark(target TEXT) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO pool_versions (expert_id, txid) VALUES (target, pg_current_xact_id())
    ON CONFLICT (expert_id) DO UPDATE SET txid = excluded.txid
    WHERE pool_versions.txid <> excluded.txid;
END
$$;

CREATE FUNCTION pool_versions_expert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pool_versions_mark(CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END);
    RETURN NULL;
END
$$;

CREATE FUNCTION pool_versions_child() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pool_versions_mark(CASE WHEN TG_OP = 'DELETE' THEN OLD.expert_id ELSE NEW.expert_id END);
    RETURN NULL;
END
$$;

CREATE TRIGGER experts_pool_versions
    AFTER INSERT OR DELETE OR UPDATE OF status, trained, employer_key, employer_institution_id,
        represented_name, represented_credit_code, represented_institution_id ON experts
    FOR EACH ROW EXECUTE FUNCTION pool_versions_expert();
CREATE TRIGGER appointments_pool_versions AFTER INSERT OR UPDATE OR DELETE ON appointments
    FOR EACH ROW EXECUTE FUNCTION pool_versions_child();
CREATE TRIGGER expert_specialties_pool_versions AFTER INSERT OR UPDATE OR DELETE ON expert_specialties
    FOR EACH ROW EXECUTE FUNCTION pool_versions_child();

-- The experts written before this migration.
INSERT INTO pool_versions (expert_id, txid) SELECT id, pg_current_xact_id() FROM experts;
