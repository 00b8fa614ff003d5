-- connbudget.budgets: what a DBA may write, and the clear errors for what they may not.
CREATE EXTENSION pg_connbudget;

-- The seed's four applications.
INSERT INTO connbudget.budgets (name, application_name, max_connections, reserved)
VALUES ('api', 'backend', 10, 10);
INSERT INTO connbudget.budgets (name, application_name, max_connections, on_full, queue_timeout)
VALUES ('extraction', 'extraction_worker', 15, 'queue', '5s'),
       ('semantic', 'semantic_worker', 15, 'queue', NULL),
       ('event', 'event_worker', 15, 'reject', NULL);
UPDATE connbudget.budgets SET max_connections = 30 WHERE name = 'extraction';
SELECT name, position, application_name, max_connections, reserved, on_full, queue_timeout,
       max_queue, priority, mode
  FROM connbudget.budgets ORDER BY name;

-- Names of the implicit budgets are reserved.
INSERT INTO connbudget.budgets (name, max_connections) VALUES ('default', 1);
INSERT INTO connbudget.budgets (name, max_connections) VALUES ('exempt', 1);
INSERT INTO connbudget.budgets (name, max_connections) VALUES ('', 1);
INSERT INTO connbudget.budgets (name, max_connections) VALUES (repeat('n', 64), 1);

-- Patterns, roles and databases the worker could not load.
INSERT INTO connbudget.budgets (name, application_name, max_connections) VALUES ('b', 'oops\', 1);
INSERT INTO connbudget.budgets (name, application_name, max_connections) VALUES ('b', repeat('%', 256), 1);
INSERT INTO connbudget.budgets (name, role_name, max_connections) VALUES ('b', '+', 1);
INSERT INTO connbudget.budgets (name, role_name, max_connections) VALUES ('b', '', 1);
INSERT INTO connbudget.budgets (name, database_name, max_connections) VALUES ('b', '', 1);

-- Limits out of range.
INSERT INTO connbudget.budgets (name, max_connections) VALUES ('b', -1);
INSERT INTO connbudget.budgets (name, max_connections, reserved) VALUES ('b', 2, 3);
INSERT INTO connbudget.budgets (name, max_connections, reserved) VALUES ('b', 2, -1);
INSERT INTO connbudget.budgets (name, max_connections, on_full) VALUES ('b', 2, 'wait');
INSERT INTO connbudget.budgets (name, max_connections, mode) VALUES ('b', 2, 'dry-run');
INSERT INTO connbudget.budgets (name, max_connections, queue_timeout) VALUES ('b', 2, '-1s');
INSERT INTO connbudget.budgets (name, max_connections, max_queue) VALUES ('b', 2, -1);
INSERT INTO connbudget.budgets (name, max_connections, queue_timeout) VALUES ('b', 2, '1 month');
INSERT INTO connbudget.budgets (max_connections) VALUES (1);

-- Updates are checked like inserts.
UPDATE connbudget.budgets SET application_name = 'bad\' WHERE name = 'event';
UPDATE connbudget.budgets SET name = 'default' WHERE name = 'event';

-- Reservations must fit the server: max_connections 50 - superuser_reserved_connections 3 = 47.
INSERT INTO connbudget.budgets (name, application_name, max_connections, reserved)
VALUES ('greedy', 'greedy', 40, 38);
INSERT INTO connbudget.budgets (name, application_name, max_connections, reserved)
VALUES ('fits', 'fits', 40, 37);
DELETE FROM connbudget.budgets WHERE name = 'fits';

-- Nothing bad got in.
SELECT name FROM connbudget.budgets ORDER BY name;

-- The table is dumped with the data: budgets survive pg_dump and restore.
SELECT unnest(extconfig)::regclass FROM pg_extension WHERE extname = 'pg_connbudget';

-- Committed rows are live (reload waits for the worker; the generation counts up).
SELECT connbudget.reload() > 0 AS live;
SELECT budget, max_connections, reserved, on_full, mode FROM connbudget.status;
