-- connbudget.status, wait_histogram, sessions, worker and latency, and reset_stats().
INSERT INTO connbudget.budgets (name, application_name, max_connections, reserved, on_full, mode)
VALUES ('api', 'backend', 10, 4, 'reject', 'enforce'),
       ('workers', '%worker', 20, 0, 'queue', 'monitor');
SELECT connbudget.reload() > 0 AS live;

-- One row per budget in match order, then default and exempt; later capabilities read 0.
SELECT budget, max_connections, reserved, on_full, mode, active, waiting, queued, timed_out,
       abandoned, avg_wait_ms, max_wait_ms, stats_reset IS NOT NULL AS has_reset_time
  FROM connbudget.status;

-- The counters beyond the spec's: refusals by reason, monitor mode's would-be verdicts,
-- waits, and when things last happened.
SELECT budget, rejected_full, rejected_queue_full, rejected_reserved, rejected_paused, terminated,
       would_reject, would_queue, waits, wait_total_ms, peak_at IS NULL AS never_peaked,
       last_refusal_at, paused
  FROM connbudget.status;

-- Waits by length, one row per budget and bucket (le_ms), each bucket's own count.
SELECT le_ms, sum(waits) AS waits FROM connbudget.wait_histogram GROUP BY le_ms ORDER BY le_ms;
SELECT count(*) AS rows, count(DISTINCT budget) AS budgets FROM connbudget.wait_histogram;

-- This superuser session is counted under exempt.
SELECT budget, state, role_name = current_user AS me, database_name, client_addr, waited_ms,
       queue_position
  FROM connbudget.sessions WHERE pid = pg_backend_pid();
SELECT active >= 1 AS counted FROM connbudget.status WHERE budget = 'exempt';

-- The worker, its database, and the configuration it keeps live.
SELECT pid IS NOT NULL AS running, database, generation > 0 AS has_generation, budgets,
       loaded_at IS NOT NULL AS loaded, last_error
  FROM connbudget.worker;
-- Its match index: one application_name shape ('backend'); '%worker' has no literal
-- head, so every login looks at it. And the shared memory it all takes.
SELECT index_shapes, unindexed_budgets, shared_memory_bytes > bytes_per_budget * 1000 AS sized,
       bytes_per_budget BETWEEN 256 AND 4096 AS per_budget, bytes_per_session BETWEEN 64 AND 4096 AS per_session
  FROM connbudget.worker;

-- reset_stats() zeroes cumulative counters, for one budget or all; unknown names fail.
SELECT connbudget.reset_stats('exempt');
SELECT admitted, rejected FROM connbudget.status WHERE budget = 'exempt';
SELECT connbudget.reset_stats();
SELECT bool_and(admitted = 0 AND rejected = 0) AS all_zero FROM connbudget.status;
SELECT measure, count FROM connbudget.latency;
SELECT connbudget.reset_stats('no_such_budget');

-- reload() cannot see uncommitted changes, and says so; COMMIT loads them.
BEGIN;
UPDATE connbudget.budgets SET max_connections = 11 WHERE name = 'api';
SELECT connbudget.reload() > 0 AS live;
COMMIT;
SELECT connbudget.reload() > 0 AS live;
SELECT max_connections FROM connbudget.status WHERE budget = 'api';

-- Reservations in status: how much of each is in use, and what no budget is entitled to
-- (capacity 47 = 50 - 3; api 11 and workers 20 fit it, so each is entitled to its
-- max_connections: 47 - 31 - this exempt session = 15).
SELECT budget, reserved, reserved_in_use, server_free, priority FROM connbudget.status;

-- explain(): the verdict a login would get now, why, and the numbers behind it.
INSERT INTO connbudget.budgets (name, application_name, max_connections, on_full)
VALUES ('closed', 'closed', 0, 'reject'), ('waits', 'waits', 0, 'queue');
SELECT connbudget.reload() > 0 AS live;
SELECT * FROM connbudget.explain('backend', 'someone', 'db') \gx
SELECT budget, verdict FROM connbudget.explain('closed', 'someone', 'db');
SELECT budget, verdict FROM connbudget.explain('waits', 'someone', 'db');
SELECT budget, verdict FROM connbudget.explain('my_worker', 'someone', 'db');
SELECT budget, verdict FROM connbudget.explain('backend', current_user, 'db');
DELETE FROM connbudget.budgets WHERE name IN ('closed', 'waits');

-- Deleting a budget removes its row.
DELETE FROM connbudget.budgets WHERE name = 'workers';
SELECT connbudget.reload() > 0 AS live;
SELECT budget FROM connbudget.status;
DELETE FROM connbudget.budgets;
SELECT connbudget.reload() > 0 AS live;
