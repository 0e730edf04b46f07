-- Compliance reports (issue 17). A report over [start, end) reads the tickets received before
-- `end` that were open at some instant of it or had an event in it: open tickets by their
-- receipt, the others by their latest event. Outbox rows are counted by the instant they were
-- made. Indexes, not an aggregate table: every figure stays a replay of the events, and a
-- definition can change without rewriting stored totals (docs/reports.md, "Scale").
CREATE INDEX tickets_open_received ON tickets (received_at) WHERE closed_at IS NULL;
CREATE INDEX tickets_last_event ON tickets (last_event_at, received_at);
CREATE INDEX tickets_closed ON tickets (closed_at) WHERE closed_at IS NOT NULL;
CREATE INDEX outbox_created ON outbox (created_at);
CREATE INDEX inbound_unmatched ON inbound_messages (received_at) WHERE status = 'unmatched';
