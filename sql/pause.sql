-- connbudget.pause() and resume(): what they return and say, and what they refuse.
INSERT INTO connbudget.budgets (name, application_name, max_connections, on_full)
VALUES ('api', 'backend', 10, 'reject'), ('workers', '%worker', 5, 'queue');
SELECT connbudget.reload() > 0 AS live;

-- pause() returns whether the budget was paused already, and says what happens now.
SELECT connbudget.pause('api');
SELECT connbudget.pause('api');
SELECT connbudget.pause('workers');
SELECT budget, paused FROM connbudget.status;

-- explain() shows what a login of a paused budget would get.
SELECT budget, verdict, reason FROM connbudget.explain('backend', 'someone', 'db');
SELECT budget, verdict FROM connbudget.explain('my_worker', 'someone', 'db');

-- A reload keeps the pause; resume() lifts it.
UPDATE connbudget.budgets SET max_connections = 11 WHERE name = 'api';
SELECT connbudget.reload() > 0 AS live;
SELECT budget, max_connections, paused FROM connbudget.status WHERE budget = 'api';
SELECT connbudget.resume('api');
SELECT connbudget.resume('api');
SELECT connbudget.resume('workers');
SELECT bool_or(paused) AS any_paused FROM connbudget.status;

-- The implicit default budget can be paused; exempt and unknown budgets cannot.
SELECT connbudget.pause('default');
SELECT connbudget.resume('default');
SELECT connbudget.pause('exempt');
SELECT connbudget.pause('no_such_budget');
SELECT connbudget.resume(NULL);

DELETE FROM connbudget.budgets;
SELECT connbudget.reload() > 0 AS live;
