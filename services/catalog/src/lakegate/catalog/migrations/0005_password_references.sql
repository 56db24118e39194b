-- A source's password is either stored (encrypted) or named by a secret reference (`env:NAME`,
-- `file:/path`) that the extractor resolves when it connects; never both, never neither.
ALTER TABLE sources ALTER COLUMN password_encrypted DROP NOT NULL;
ALTER TABLE sources ADD COLUMN password_ref text;
ALTER TABLE sources ADD CONSTRAINT sources_one_secret
    CHECK ((password_encrypted IS NULL) <> (password_ref IS NULL));
