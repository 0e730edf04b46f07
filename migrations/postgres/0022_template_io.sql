-- Issue 21: citizen notices in the app IO. A template version carries the subject and the
-- Markdown body of the IO message beside its e-mail and SMS parts; both or neither. Versions
-- stored before this migration have NULL in both: they keep the bundled default's IO words.
ALTER TABLE template_versions ADD COLUMN body_io_subject TEXT;
ALTER TABLE template_versions ADD COLUMN body_io_markdown TEXT;
