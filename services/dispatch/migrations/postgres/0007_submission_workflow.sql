-- The handling of a submission (D21): received, assigned to a city handler, answered, closed,
-- perhaps with a follow-up task.
ALTER TABLE submissions ADD COLUMN handler TEXT NOT NULL DEFAULT '';
ALTER TABLE submissions ADD COLUMN answer TEXT NOT NULL DEFAULT '';
ALTER TABLE submissions ADD COLUMN follow_up_task_id TEXT NOT NULL DEFAULT '';
ALTER TABLE submissions ADD COLUMN close_note TEXT NOT NULL DEFAULT '';

-- Why a report was last returned to its expert for revision.
ALTER TABLE reports ADD COLUMN return_reason TEXT NOT NULL DEFAULT '';
