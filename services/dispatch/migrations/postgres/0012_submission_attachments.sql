-- The attachments a submission names when it is made (`att_...`, space-separated, in order):
-- files uploaded beforehand that the submitter may see.
ALTER TABLE submissions ADD COLUMN attachment_ids TEXT NOT NULL DEFAULT '';
