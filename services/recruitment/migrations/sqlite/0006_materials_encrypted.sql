-- Application materials encrypted at rest (as the registry's evidence files, its migration
-- 0008): from this migration on, UploadMaterial stores `content` as AES-256-GCM ciphertext of the
-- personal-data key (a 12-byte nonce, the ciphertext and its 16-byte tag; the material id is
-- authenticated with it), marked 'pd1'. Rows written before it hold the file as uploaded and keep
-- '' here; GetMaterial reads both, and checks the size and SHA-256 (always of the plain file)
-- either way. The key never reaches the database, so old rows cannot be encrypted by a
-- migration; uploading the file again stores it encrypted.
ALTER TABLE materials ADD COLUMN content_encryption TEXT NOT NULL DEFAULT ''
    CONSTRAINT materials_content_encryption CHECK (content_encryption IN ('', 'pd1'));
