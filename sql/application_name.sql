-- A login's application_name as the server cleans it: PostgreSQL 15 writes each byte
-- outside printable ASCII as '?' (expected/application_name.out), 16 and later as \xNN
-- (expected/application_name_1.out). match() sees a name as a real login carries it, and
-- the trigger refuses a pattern no login can carry, saying what to write instead.
DELETE FROM connbudget.budgets;
INSERT INTO connbudget.budgets (name, position, application_name, max_connections) VALUES
  ('cleaned_15', 1, 'caf??%', 5),
  ('cleaned_16', 2, 'caf\\xc3\\xa9%', 5);
SELECT connbudget.reload() > 0 AS live;
SELECT connbudget.match('café-7', 'x', 'db') AS non_ascii,
       connbudget.match(E'caf\\xc3\\xa9-7', 'x', 'db') AS escaped_by_the_client,
       connbudget.match('caf??-7', 'x', 'db') AS question_marks;

INSERT INTO connbudget.budgets (name, application_name, max_connections) VALUES ('accents', 'café%', 5);
INSERT INTO connbudget.budgets (name, application_name, max_connections) VALUES ('tabs', E'a\tb', 5);
SELECT name FROM connbudget.budgets ORDER BY name;

DELETE FROM connbudget.budgets;
SELECT connbudget.reload() > 0 AS live;
