-- Evidence files encrypted at rest (issue 5): from this migration on, UploadDocument stores
-- `content` as AES-256-GCM ciphertext of the personal-data key (a 12-byte nonce, the ciphertext
-- and its 16-byte tag; the document id is authenticated with it), marked 'pd1'. Rows written
-- before it hold the file as uploaded and keep '' here; GetDocument reads both, and checks the
-- SHA-256 (always of the plain file) either way. The key never reaches the database, so old rows
-- cannot be encrypted by a migration; re-uploading a file stores it encrypted.
ALTER TABLE documents ADD COLUMN content_encryption TEXT NOT NULL DEFAULT ''
    CONSTRAINT documents_content_encryption CHECK (content_encryption IN ('', 'pd1'));
