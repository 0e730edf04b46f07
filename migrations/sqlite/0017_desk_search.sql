-- The console's search (issue 18): a page of tickets, newest first, found by the citizen's
-- identity (number, codice fiscale, e-mail, mobile: the existing indexes, which in SQLite end
-- with the rowid, so they already give the id order) or by office, state and period. Each shape
-- the console offers reads an index in the page's own order and stops after the page: a page
-- costs the same at the first ticket and at the millionth.
--
-- Ordered by id (newest first): office; open tickets; open tickets in one SLA state; open
-- tickets of one office (an office and one SLA state: `tickets_state`). Closed tickets, the
-- large majority, read the same indexes as all tickets and skip the few open ones.
CREATE INDEX tickets_office_id ON tickets (office, id);
CREATE INDEX tickets_open_id ON tickets (id) WHERE closed_at IS NULL;
CREATE INDEX tickets_open_state_id ON tickets (sla_state, id) WHERE closed_at IS NULL;
CREATE INDEX tickets_open_office_id ON tickets (office, id) WHERE closed_at IS NULL;
-- With a period (local days of receipt) a page is ordered by receipt, newest first, then id:
-- all tickets; one office; open tickets in one SLA state (open tickets of a period read
-- `tickets_open_received`).
CREATE INDEX tickets_received_id ON tickets (received_at, id);
CREATE INDEX tickets_office_received ON tickets (office, received_at, id);
CREATE INDEX tickets_open_state_received ON tickets (sla_state, received_at, id) WHERE closed_at IS NULL;
-- The ticket page lists the audit records about a ticket (object = its number).
CREATE INDEX audit_object ON audit_log (object, id);
