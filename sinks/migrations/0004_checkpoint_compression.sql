-- Entity state checkpoints are tens of megabytes per partition. With PostgreSQL's default TOAST
-- compression (pglz), compressing them took about a fifth of the server's CPU time in
-- make bench-e2e; lz4 (PostgreSQL 14 and later, when built with it) does the same job in a
-- fraction of that. A server without lz4 stores them uncompressed instead, which costs bytes,
-- not CPU. EXECUTE defers parsing, so an older server's syntax error is caught here too.
DO $$
BEGIN
    EXECUTE 'ALTER TABLE vigil.entity_state ALTER COLUMN state SET COMPRESSION lz4';
EXCEPTION WHEN feature_not_supported OR syntax_error THEN
    ALTER TABLE vigil.entity_state ALTER COLUMN state SET STORAGE EXTERNAL;
END
$$;
