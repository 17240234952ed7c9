-- A delivery the callee refused for good (a malformed or unauthorised call) is parked instead of
-- retried forever; operators see it (metric supervision_outbox_parked) and requeue it after the
-- cause is fixed by clearing parked_at.
ALTER TABLE kit_outbox ADD COLUMN parked_at TEXT;
