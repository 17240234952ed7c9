-- An expert's child rows kept ready to read (issue 12). GetExpert and ListExperts used to
-- aggregate each expert's documents, categories, conditions, specialties, civil-servant entries
-- and last term into JSON on every read: six subqueries that cost PostgreSQL three times the
-- expert's row itself (docs/performance.md, "Registry reads"). `expert_reads` holds that JSON per
-- expert, and triggers keep it current in the same transaction as every change, whoever writes.
--
-- PostgreSQL only: SQLite reads the child tables in-process, where a statement costs no round
-- trip. The document holds only what the child tables hold (ciphertext, never a plain number).

-- The JSON object the readers parse: each child table as an array of its rows in stored order,
-- and the last term as one row (null before the first appointment). PL/pgSQL rather than SQL so
-- that each session plans its statement once: a SQL function's body is planned on every call,
-- which made the triggers below cost 0.58 ms per imported expert instead of 0.35 ms.
CREATE FUNCTION expert_children(expert TEXT) RETURNS TEXT
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN CAST(json_build_object(
        'documents', COALESCE((SELECT json_agg(c ORDER BY c.ordinal) FROM expert_documents c
                               WHERE c.expert_id = expert), '[]'),
        'categories', COALESCE((SELECT json_agg(c ORDER BY c.ordinal) FROM expert_categories c
                                WHERE c.expert_id = expert), '[]'),
        'conditions', COALESCE((SELECT json_agg(c ORDER BY c.ordinal) FROM expert_conditions c
                                WHERE c.expert_id = expert), '[]'),
        'specialties', COALESCE((SELECT json_agg(c ORDER BY c.ordinal) FROM expert_specialties c
                                 WHERE c.expert_id = expert), '[]'),
        'civil_servant', COALESCE((SELECT json_agg(c ORDER BY c.seq) FROM expert_civil_servant_entries c
                                   WHERE c.expert_id = expert), '[]'),
        'appointment', (SELECT row_to_json(a) FROM appointments a
                        WHERE a.expert_id = expert ORDER BY a.term_number DESC LIMIT 1)
    ) AS TEXT);
END
$$;

CREATE TABLE expert_reads (
    expert_id  TEXT COLLATE "C" PRIMARY KEY REFERENCES experts (id),
    -- The transaction that wrote `children` last (txid_current()), so that one transaction
    -- changing many child rows of an expert computes the document once.
    written_by BIGINT NOT NULL,
    children   TEXT NOT NULL
);

-- Runs at commit (the triggers are deferred), once per changed child row: the first run for an
-- expert in a transaction already sees all of the transaction's changes, so later runs return at
-- once. It locks the expert's row first, so that of two transactions changing the same expert the
-- second to commit waits for the first and then computes from what the first committed (each
-- statement of a READ COMMITTED transaction sees what was committed before it started). The lock
-- is FOR NO KEY UPDATE, which does not wait for the KEY SHARE locks that inserting a child row
-- takes on its expert: FOR UPDATE would deadlock with a transaction that inserted a child row of
-- the same expert and now waits for one of ours.
CREATE FUNCTION expert_reads_refresh() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    target TEXT := CASE WHEN TG_OP = 'DELETE' THEN OLD.expert_id ELSE NEW.expert_id END;
BEGIN
    IF EXISTS (SELECT 1 FROM expert_reads WHERE expert_id = target AND written_by = txid_current()) THEN
        RETURN NULL;
    END IF;
    PERFORM 1 FROM experts WHERE id = target FOR NO KEY UPDATE;
    INSERT INTO expert_reads (expert_id, written_by, children)
    VALUES (target, txid_current(), expert_children(target))
    ON CONFLICT (expert_id) DO UPDATE SET written_by = excluded.written_by, children = excluded.children;
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER expert_documents_reads AFTER INSERT OR UPDATE OR DELETE ON expert_documents
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION expert_reads_refresh();
CREATE CONSTRAINT TRIGGER expert_categories_reads AFTER INSERT OR UPDATE OR DELETE ON expert_categories
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION expert_reads_refresh();
CREATE CONSTRAINT TRIGGER expert_conditions_reads AFTER INSERT OR UPDATE OR DELETE ON expert_conditions
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION expert_reads_refresh();
CREATE CONSTRAINT TRIGGER expert_specialties_reads AFTER INSERT OR UPDATE OR DELETE ON expert_specialties
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION expert_reads_refresh();
CREATE CONSTRAINT TRIGGER expert_civil_servant_entries_reads
    AFTER INSERT OR UPDATE OR DELETE ON expert_civil_servant_entries
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION expert_reads_refresh();
CREATE CONSTRAINT TRIGGER appointments_reads AFTER INSERT OR UPDATE OR DELETE ON appointments
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION expert_reads_refresh();

-- The experts written before this migration.
INSERT INTO expert_reads (expert_id, written_by, children)
SELECT id, txid_current(), expert_children(id) FROM experts;
