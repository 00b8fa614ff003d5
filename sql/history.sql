-- connbudget.history: one row per budget per sample, oldest first, with its sessions and
-- what its counters gained since its previous row. test/regress.conf samples every 100 ms.
SHOW connbudget.history_size;
SHOW connbudget.sample_interval;

SELECT attname, format_type(atttypid, atttypmod) AS type
  FROM pg_attribute WHERE attrelid = 'connbudget.history'::regclass AND attnum > 0 ORDER BY attnum;

-- A budget made live shows up in the samples taken from then on.
INSERT INTO connbudget.budgets (name, application_name, max_connections) VALUES ('charted', 'charted', 3);
SELECT connbudget.reload() > 0 AS live;
DO $$
BEGIN
  FOR attempt IN 1 .. 600 LOOP
    EXIT WHEN EXISTS (SELECT FROM connbudget.history WHERE budget = 'charted');
    PERFORM pg_sleep(0.1);
  END LOOP;
END
$$;

-- Each sample lists the budgets in status order: match order, then default and exempt.
CREATE TEMP VIEW numbered AS
  SELECT * FROM connbudget.history() WITH ORDINALITY
    AS h(sampled_at, budget, max_connections, active, waiting, admitted, rejected, queued,
         timed_out, abandoned, n);
CREATE TEMP VIEW newest AS
  SELECT * FROM numbered WHERE sampled_at = (SELECT max(sampled_at) FROM numbered);
SELECT string_agg(budget, ', ' ORDER BY n) AS budgets FROM newest;
-- Nobody logs in as charted or default here; this superuser session is counted as exempt.
SELECT budget, max_connections, active, waiting, admitted, rejected, queued, timed_out, abandoned
  FROM newest WHERE budget <> 'exempt' ORDER BY n;
SELECT active >= 1 AS counts_me FROM newest WHERE budget = 'exempt';

-- Rows come oldest first.
SELECT bool_and(sampled_at >= previous) AS oldest_first
  FROM (SELECT sampled_at, lag(sampled_at) OVER (ORDER BY n) AS previous FROM numbered) rows;
DROP VIEW newest, numbered;

-- pg_monitor members read it; others may not.
CREATE ROLE regress_history_plain;
CREATE ROLE regress_history_watcher IN ROLE pg_monitor;
SET ROLE regress_history_watcher;
SELECT count(*) > 0 AS sees_rows FROM connbudget.history;
SET ROLE regress_history_plain;
SELECT count(*) FROM connbudget.history;
RESET ROLE;
SELECT r AS role, has_table_privilege(r, 'connbudget.history', 'SELECT') AS view,
       has_function_privilege(r, 'connbudget.history()', 'EXECUTE') AS function
  FROM unnest(ARRAY['regress_history_plain', 'regress_history_watcher']) AS r;
DROP ROLE regress_history_plain, regress_history_watcher;

DELETE FROM connbudget.budgets;
SELECT connbudget.reload() > 0 AS live;
