-- Dead letters and data-quality findings keep at most 16 KiB of a rejected message, with identifiers masked
-- (schemas/deadletter.py): these columns say how large the whole message was, the SHA-256 of the whole as
-- stored (after masking), and whether the kept bytes were truncated or masked.

ALTER TABLE {{db}}.dead_letters
    ADD COLUMN IF NOT EXISTS original_size Nullable(UInt32),
    ADD COLUMN IF NOT EXISTS original_sha256 Nullable(String),
    ADD COLUMN IF NOT EXISTS original_truncated Bool DEFAULT false,
    ADD COLUMN IF NOT EXISTS original_masked Bool DEFAULT false;

ALTER TABLE {{db}}.data_quality_findings
    ADD COLUMN IF NOT EXISTS original_size Nullable(UInt32),
    ADD COLUMN IF NOT EXISTS original_sha256 Nullable(String),
    ADD COLUMN IF NOT EXISTS original_truncated Bool DEFAULT false,
    ADD COLUMN IF NOT EXISTS original_masked Bool DEFAULT false;
