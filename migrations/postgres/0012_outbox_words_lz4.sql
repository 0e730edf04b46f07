-- Issue 16: the words of each message (`rendered`, about 2.6 KB for an e-mail, most of it HTML)
-- are compressed by PostgreSQL as they are written; with the default method (pglz) that was 3 %
-- of the machine's CPU while e-mail was being sent. lz4 costs a fraction of it. A server built
-- without lz4 keeps the default: the statement is skipped, not failed.
DO $$
BEGIN
    ALTER TABLE outbox ALTER COLUMN rendered SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
    RAISE NOTICE 'lz4 is not available: outbox.rendered keeps the default compression';
END
$$;
