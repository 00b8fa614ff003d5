-- connbudget.match(): which budget a login gets — LIKE patterns, +role, CIDR, order.
DELETE FROM connbudget.budgets;
CREATE ROLE regress_workers NOLOGIN;
CREATE ROLE regress_alice LOGIN IN ROLE regress_workers;
CREATE ROLE regress_team NOLOGIN;
GRANT regress_team TO regress_workers;  -- alice is a member of team through workers
CREATE ROLE regress_bob LOGIN;

INSERT INTO connbudget.budgets (name, position, application_name, role_name, database_name, client_addr, max_connections) VALUES
  ('literal_pct', 1, '100\%', NULL, NULL, NULL, 5),
  ('underscore',  2, 'job_', NULL, NULL, NULL, 5),
  ('escaped_us',  2, 'a\_b', NULL, NULL, NULL, 5),
  ('workers',     3, '%worker%', NULL, NULL, NULL, 5),
  ('team',        4, NULL, '+regress_team', NULL, NULL, 5),
  ('bob',         4, NULL, 'regress_bob', NULL, NULL, 5),
  ('lan_v4',      5, NULL, NULL, NULL, '10.0.0.0/8', 5),
  ('lan_v6',      5, NULL, NULL, NULL, 'fd00::/8', 5),
  ('reports_db',  6, NULL, NULL, 'reports', NULL, 5),
  ('app_on_lan',  0, 'app', NULL, 'appdb', '192.168.0.0/16', 5);
SELECT connbudget.reload() > 0 AS live;

-- LIKE: % and _ are wildcards, \ makes them literal, matching is case-sensitive.
SELECT connbudget.match('100%', 'x', 'db')        AS literal_percent,
       connbudget.match('1000', 'x', 'db')        AS not_literal_percent,
       connbudget.match('job7', 'x', 'db')        AS one_character,
       connbudget.match('job77', 'x', 'db')       AS two_characters,
       connbudget.match('a_b', 'x', 'db')         AS escaped_underscore,
       connbudget.match('axb', 'x', 'db')         AS not_escaped_underscore,
       connbudget.match('event_worker_3', 'x', 'db') AS any_run,
       connbudget.match('WORKER', 'x', 'db')      AS case_sensitive;

-- Roles: exact names, and +role for members at any depth.
SELECT connbudget.match('psql', 'regress_bob', 'db')     AS exact_role,
       connbudget.match('psql', 'regress_alice', 'db')   AS member_through_workers,
       connbudget.match('psql', 'regress_team', 'db')    AS the_group_itself,
       connbudget.match('psql', 'regress_nobody', 'db')  AS unknown_role;

-- Client addresses: IPv4 and IPv6 ranges; a Unix socket (NULL) matches no range.
SELECT connbudget.match('psql', 'x', 'db', '10.1.2.3')   AS v4_inside,
       connbudget.match('psql', 'x', 'db', '11.1.2.3')   AS v4_outside,
       connbudget.match('psql', 'x', 'db', 'fd12::1')    AS v6_inside,
       connbudget.match('psql', 'x', 'db', 'fe80::1')    AS v6_outside,
       connbudget.match('psql', 'x', 'db', NULL)         AS unix_socket,
       connbudget.match('psql', 'x', 'db', '::ffff:10.1.2.3') AS mapped_v4_is_v6;

-- Every non-NULL condition must hold; the lowest position wins; ties go by name.
SELECT connbudget.match('app', 'x', 'appdb', '192.168.1.1')  AS all_conditions,
       connbudget.match('app', 'x', 'otherdb', '192.168.1.1') AS wrong_database,
       connbudget.match('app', 'x', 'reports')                AS database_only,
       connbudget.match('my_worker', 'regress_bob', 'db')     AS position_3_before_4,
       connbudget.match('psql', 'regress_alice', 'db', '10.0.0.1') AS position_4_before_5;
UPDATE connbudget.budgets SET position = 4 WHERE name = 'lan_v4';
SELECT connbudget.reload() > 0 AS live;
SELECT connbudget.match('psql', 'regress_bob', 'db', '10.0.0.1') AS tie_goes_to_bob,
       connbudget.match('psql', 'regress_nobody', 'db', '10.0.0.1') AS lan_v4_at_4;

-- Superusers are exempt; logins that match nothing are default.
SELECT connbudget.match('backend', current_user, 'db') AS superuser,
       connbudget.match(NULL, NULL, NULL)              AS nothing;

DELETE FROM connbudget.budgets;
DROP ROLE regress_alice, regress_bob, regress_workers, regress_team;
SELECT connbudget.reload() > 0 AS live;
SELECT connbudget.match('backend', 'x', 'db') AS after_delete;
