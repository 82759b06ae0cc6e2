-- A notice of a large group runs to megabytes, and it is written before it is sent: lz4
-- compresses it several times faster than the default pglz (about 8 ms against 35 ms for ten
-- notices of 2,000 alerts). Servers built without lz4 keep pglz. Only new values are affected.
DO $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM pg_settings
        WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)
    ) THEN
        EXECUTE 'ALTER TABLE notifications ALTER COLUMN notice SET COMPRESSION lz4';
    END IF;
END
$$;
