-- Letter numbers come from a per-task counter bumped with RETURNING in the accepting transaction,
-- so that concurrent accepts on one task never compute the same number (COUNT(*) + 1 did).
ALTER TABLE tasks ADD COLUMN letters_issued INTEGER NOT NULL DEFAULT 0;
UPDATE tasks SET letters_issued = (SELECT COUNT(*) FROM letters WHERE letters.task_id = tasks.id);
