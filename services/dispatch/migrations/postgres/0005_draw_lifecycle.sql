-- D14's soft exclusions and their relaxations at prepare, and a draw's end other than execution:
-- a supplementary draw's link to the draw whose order was exhausted; abandoned before execution (with the reason), or voided after it by a second person (D8).
ALTER TABLE draws ADD COLUMN pool_relaxations TEXT NOT NULL DEFAULT '[]';
ALTER TABLE draws ADD COLUMN specialty_tier BIGINT NOT NULL DEFAULT 3;
ALTER TABLE draws ADD COLUMN abandon_reason TEXT NOT NULL DEFAULT '';
ALTER TABLE draws ADD COLUMN void_reason TEXT NOT NULL DEFAULT '';
ALTER TABLE draws ADD COLUMN voided_by TEXT NOT NULL DEFAULT '';
ALTER TABLE draws ADD COLUMN void_time TEXT NOT NULL DEFAULT '';
ALTER TABLE draws ADD COLUMN supplements_draw_id TEXT NOT NULL DEFAULT '';
