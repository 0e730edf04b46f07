-- The console's search (issue 18): a page of tickets, newest first, found by the citizen's
-- identity (number, codice fiscale, e-mail, mobile) or by office, state and period. Each shape
-- the console offers reads an index in the page's own order and stops after the page: a page
-- costs the same at the first ticket and at the millionth.
--
-- The identity indexes gain the id, so a citizen's tickets come in page order without a sort
-- (in SQLite they already end with the rowid). Same names, same lookups for the reply matcher.
CREATE INDEX tickets_fiscal_code_id ON tickets (fiscal_code, id) WHERE fiscal_code IS NOT NULL;
DROP INDEX tickets_fiscal_code;
ALTER INDEX tickets_fiscal_code_id RENAME TO tickets_fiscal_code;
CREATE INDEX tickets_citizen_mobile_id ON tickets (citizen_mobile, id) WHERE citizen_mobile IS NOT NULL;
DROP INDEX tickets_citizen_mobile;
ALTER INDEX tickets_citizen_mobile_id RENAME TO tickets_citizen_mobile;
CREATE INDEX tickets_citizen_email_id ON tickets (citizen_email, id) WHERE citizen_email IS NOT NULL;
DROP INDEX tickets_citizen_email;
ALTER INDEX tickets_citizen_email_id RENAME TO tickets_citizen_email;
-- Ordered by id (newest first): office; open tickets; open tickets in one SLA state; open
-- tickets of one office (an office and one SLA state: `tickets_state`). Closed tickets, the
-- large majority, read the same indexes as all tickets and skip the few open ones.
CREATE INDEX tickets_office_id ON tickets (office, id);
CREATE INDEX tickets_open_id ON tickets (id) WHERE closed_at IS NULL;
CREATE INDEX tickets_open_state_id ON tickets (sla_state, id) WHERE closed_at IS NULL;
CREATE INDEX tickets_open_office_id ON tickets (office, id) WHERE closed_at IS NULL;
-- With a period (local days of receipt) a page is ordered by receipt, newest first, then id:
-- all tickets; one office; open tickets in one SLA state; open tickets (the reports' index of
-- open tickets by receipt gains the id, as in SQLite).
CREATE INDEX tickets_received_id ON tickets (received_at, id);
CREATE INDEX tickets_office_received ON tickets (office, received_at, id);
CREATE INDEX tickets_open_state_received ON tickets (sla_state, received_at, id) WHERE closed_at IS NULL;
CREATE INDEX tickets_open_received_id ON tickets (received_at, id) WHERE closed_at IS NULL;
DROP INDEX tickets_open_received;
ALTER INDEX tickets_open_received_id RENAME TO tickets_open_received;
-- The ticket page lists the audit records about a ticket (object = its number).
CREATE INDEX audit_object ON audit_log (object, id);
