-- The certificates a probe saw (TLS and HTTPS peers, certificate files): a JSON array of
-- {path, subject, issuer, names, not_after_ms}; NULL when it saw none.
ALTER TABLE check_results ADD COLUMN certificates TEXT;
