-- Who may see and who may change: pg_monitor members read, only superusers write.
CREATE ROLE regress_plain LOGIN;
CREATE ROLE regress_watcher LOGIN IN ROLE pg_monitor;

SET ROLE regress_plain;
SELECT * FROM connbudget.status;
SELECT * FROM connbudget.sessions;
SELECT connbudget.match('a', 'b', 'c');
SELECT connbudget.reload();
SELECT connbudget.reset_stats();
SELECT connbudget.pause('default');
SELECT * FROM connbudget.wait_histogram;
INSERT INTO connbudget.budgets (name, max_connections) VALUES ('sneaky', 1);
RESET ROLE;

SET ROLE regress_watcher;
SELECT budget FROM connbudget.status ORDER BY budget;
SELECT count(*) >= 1 AS sees_sessions FROM connbudget.sessions;
SELECT database, last_error FROM connbudget.worker;
SELECT count > 0 AS timed FROM connbudget.latency WHERE measure = 'admission';
SELECT count(*) > 0 AS sees_waits FROM connbudget.wait_histogram;
SELECT connbudget.match('a', 'b', 'c');
SELECT count(*) FROM connbudget.budgets;
SELECT connbudget.reload();
SELECT connbudget.reset_stats();
SELECT connbudget.pause('default');
SELECT connbudget.resume('default');
INSERT INTO connbudget.budgets (name, max_connections) VALUES ('sneaky', 1);
UPDATE connbudget.budgets SET max_connections = 0;
DELETE FROM connbudget.budgets;
RESET ROLE;

-- What PUBLIC and pg_monitor were granted, from the catalogs.
SELECT p.proname, has_function_privilege('regress_plain', p.oid, 'EXECUTE') AS plain,
       has_function_privilege('regress_watcher', p.oid, 'EXECUTE') AS watcher
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'connbudget' ORDER BY p.proname;

-- The extension's event trigger runs for anyone's DROP EXTENSION, as them, without the
-- EXECUTE privilege they lack: their command goes on.
SET ROLE regress_plain;
DROP EXTENSION IF EXISTS no_such_extension;
RESET ROLE;
DROP ROLE regress_plain, regress_watcher;
