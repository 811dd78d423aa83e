-- Every hostname the verifier checks has a time for its next check (a new
-- one 0: due at once, ahead of every scheduled check, on both databases). NULL
-- used to mean "now": `next_check_at IS NULL OR ...` made every round scan
-- the whole table, and NULLs sort first on SQLite but last on PostgreSQL.
UPDATE custom_hostnames SET next_check_at = 0 WHERE next_check_at IS NULL;
-- Only the statuses the verifier checks: blocked and timed-out rows are
-- never read by a round.
DROP INDEX custom_hostnames_due;
CREATE INDEX custom_hostnames_due ON custom_hostnames (next_check_at)
    WHERE status IN ('pending', 'active', 'moved');
