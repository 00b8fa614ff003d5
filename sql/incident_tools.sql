-- connbudget.terminate_excess(): its signature, who may call it, and what it says when
-- there is nothing to end. Ending sessions needs other sessions: see
-- test/t/070_terminate_excess.pl.
SELECT unnest(string_to_array(pg_get_function_arguments('connbudget.terminate_excess'::regproc), ', '))
       AS argument;
SELECT pg_get_function_result('connbudget.terminate_excess'::regproc) AS result;

INSERT INTO connbudget.budgets (name, application_name, max_connections)
VALUES ('incident', 'incident_app', 5);
SELECT connbudget.reload() > 0 AS live;

-- A budget within its limit: no rows, and the numbers.
SELECT * FROM connbudget.terminate_excess('incident');
SELECT * FROM connbudget.terminate_excess('incident', include_in_transaction => true);

-- Unknown budgets fail with a hint; NULL ends nothing.
SELECT * FROM connbudget.terminate_excess('no_such_budget');
SELECT count(*) FROM connbudget.terminate_excess(NULL);

-- The implicit budgets: exempt is never limited; default only by its setting (none here).
SELECT * FROM connbudget.terminate_excess('exempt');
SELECT * FROM connbudget.terminate_excess('default');

-- A lowered limit counts once it is committed and loaded.
BEGIN;
UPDATE connbudget.budgets SET max_connections = 0 WHERE name = 'incident';
SELECT * FROM connbudget.terminate_excess('incident');
ROLLBACK;

-- Superusers only: neither PUBLIC nor pg_monitor may end sessions.
CREATE ROLE regress_incident_plain LOGIN;
CREATE ROLE regress_incident_watcher LOGIN IN ROLE pg_monitor;
SET ROLE regress_incident_plain;
SELECT * FROM connbudget.terminate_excess('incident');
RESET ROLE;
SET ROLE regress_incident_watcher;
SELECT * FROM connbudget.terminate_excess('incident');
RESET ROLE;
DROP ROLE regress_incident_plain, regress_incident_watcher;

DELETE FROM connbudget.budgets;
SELECT connbudget.reload() > 0 AS live;
