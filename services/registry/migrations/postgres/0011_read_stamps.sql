-- What GetExpert answers for an expert is their experts row and the child rows that
-- `expert_reads` keeps (0009). Each of the two now carries a stamp, drawn from one sequence by
-- triggers whenever it is written, whoever writes it: a registry replica keeps the experts it
-- read, parsed, with the two stamps, and a later read fetches only the stamps (issue 12,
-- docs/performance.md "Registry reads"). Equal stamps mean an unchanged expert.
--
-- A sequence, not the writing transaction's id: a sequence never hands out a number twice, also
-- across a dump and restore into a new cluster, where transaction ids start again. PostgreSQL
-- only, like `expert_reads`: SQLite reads in-process and keeps no copies.

CREATE SEQUENCE expert_read_stamps AS BIGINT;

-- 0 for the rows written before this migration: each row's pair of stamps is compared only with
-- the same expert's, and every later write takes a number from the sequence (never 0).
ALTER TABLE experts ADD COLUMN row_stamp BIGINT NOT NULL DEFAULT 0;
ALTER TABLE expert_reads ADD COLUMN children_stamp BIGINT NOT NULL DEFAULT 0;

-- A new stamp for every inserted row and every update that changes a column. An update that
-- leaves the row as it was (the lifecycle pass's `SET revision = revision`, which only locks)
-- keeps its stamp, so readers keep their copies.
CREATE FUNCTION experts_row_stamp() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW IS NOT DISTINCT FROM OLD THEN
        RETURN NEW;
    END IF;
    NEW.row_stamp := nextval('expert_read_stamps');
    RETURN NEW;
END
$$;

CREATE TRIGGER experts_row_stamp BEFORE INSERT OR UPDATE ON experts
    FOR EACH ROW EXECUTE FUNCTION experts_row_stamp();

-- A new stamp whenever the stored child rows change: written by 0009's refresh at the commit of
-- a change to a child table, or by hand (deploy.md's rebuild, `UPDATE expert_reads SET children
-- = expert_children(expert_id)`). A refresh that writes the same document keeps the stamp.
CREATE FUNCTION expert_reads_children_stamp() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.children IS NOT DISTINCT FROM OLD.children THEN
        NEW.children_stamp := OLD.children_stamp;
        RETURN NEW;
    END IF;
    NEW.children_stamp := nextval('expert_read_stamps');
    RETURN NEW;
END
$$;

CREATE TRIGGER expert_reads_children_stamp BEFORE INSERT OR UPDATE ON expert_reads
    FOR EACH ROW EXECUTE FUNCTION expert_reads_children_stamp();
