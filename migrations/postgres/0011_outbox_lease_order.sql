-- Issue 16: the dispatcher leases the oldest ready rows, ORDER BY not_before, id. Indexed on
-- not_before alone, every lease read and sorted all the rows sharing the oldest instant (an
-- engine pass owes its messages at one instant), so each lease cost time in proportion to the
-- queue: ~50 ms per lease with 10,000 messages waiting. On (not_before, id) the lease reads only
-- the rows it takes. (SQLite's index already ends with the rowid, which is the id.)
DROP INDEX outbox_ready;
CREATE INDEX outbox_ready ON outbox (not_before, id) WHERE state IN ('pending', 'retry', 'sending');
