-- DesignateExperts (D15): a DESIGNATION draw has no frozen list, seed or order; it records the
-- operator's reason and the approval of the task's NON_RANDOM_DESIGNATION exception it rests on
-- (JSON: reason, approved_by, approved_at, approval_reason), empty for a random draw.
ALTER TABLE draws ADD COLUMN designation TEXT NOT NULL DEFAULT '';
