-- Issue 15: four eyes covers rollback too.
-- A version made by a rollback names the version whose words it restores (resolved to the
-- first one: a rollback of a rollback names the original; 0 is the bundled default). Rollback
-- may only restore words that were live before, and under four eyes only words that two people
-- approved: the restored version's author and a different publisher (or the bundled default).
-- Versions made before this migration have NULL here: a rollback made by the old code counts
-- as published by its own author.
ALTER TABLE template_versions ADD COLUMN restores BIGINT;
