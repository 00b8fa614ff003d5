-- pg_connbudget 1.0: the budgets table, its triggers, the views and functions.
\echo Use "CREATE EXTENSION pg_connbudget" to load this file. \quit

-- The schema holds the budgets and the functions superusers call: a schema of that name
-- that an ordinary role created first (and could fill) is not adopted.
DO $$
DECLARE
    owner name;
BEGIN
    SELECT r.rolname INTO owner
      FROM pg_catalog.pg_namespace n JOIN pg_catalog.pg_roles r ON r.oid = n.nspowner
     WHERE n.nspname = 'connbudget' AND NOT r.rolsuper;
    IF FOUND THEN
        RAISE EXCEPTION 'schema connbudget belongs to role "%", which is not a superuser', owner
            USING HINT = 'Drop that schema, or make a superuser its owner, then CREATE EXTENSION pg_connbudget.';
    END IF;
    IF EXISTS (SELECT FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = 'connbudget')
       OR EXISTS (SELECT FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
                   WHERE n.nspname = 'connbudget') THEN
        RAISE EXCEPTION 'schema connbudget already holds objects'
            USING HINT = 'pg_connbudget creates its objects in a schema of its own: drop or rename that schema first.';
    END IF;
END
$$;

-- Budgets are rows. The worker of connbudget.database loads them into shared memory.
CREATE TABLE connbudget.budgets (
    name             text PRIMARY KEY,
    position         integer NOT NULL DEFAULT 0,
    application_name text,
    role_name        text,
    database_name    text,
    client_addr      cidr,
    max_connections  integer NOT NULL CHECK (max_connections >= 0),
    reserved         integer NOT NULL DEFAULT 0,
    on_full          text NOT NULL DEFAULT 'reject' CHECK (on_full IN ('reject', 'queue')),
    queue_timeout    interval CHECK (queue_timeout >= interval '0'),
    max_queue        integer CHECK (max_queue >= 0),
    priority         integer NOT NULL DEFAULT 0,
    mode             text NOT NULL DEFAULT 'enforce' CHECK (mode IN ('enforce', 'monitor')),
    idle_reclaim     interval CHECK (idle_reclaim >= interval '0'),
    comment          text,
    CONSTRAINT budgets_reserved_check CHECK (reserved BETWEEN 0 AND max_connections)
);
COMMENT ON TABLE connbudget.budgets IS 'Connection budgets; changes reach new logins within ~100 ms of COMMIT';
SELECT pg_catalog.pg_extension_config_dump('connbudget.budgets', '');

CREATE FUNCTION connbudget.check_budget_row() RETURNS trigger
    AS 'MODULE_PATHNAME', 'connbudget_check_budget_row' LANGUAGE C
    SET search_path = pg_catalog, pg_temp;
CREATE FUNCTION connbudget.budgets_changed() RETURNS trigger
    AS 'MODULE_PATHNAME', 'connbudget_budgets_changed' LANGUAGE C
    SET search_path = pg_catalog, pg_temp;
CREATE TRIGGER check_budget_row BEFORE INSERT OR UPDATE ON connbudget.budgets
    FOR EACH ROW EXECUTE FUNCTION connbudget.check_budget_row();
CREATE TRIGGER budgets_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON connbudget.budgets
    FOR EACH STATEMENT EXECUTE FUNCTION connbudget.budgets_changed();
-- DROP EXTENSION pg_connbudget wakes the worker when it commits, so that enforcement stops
-- at once (the worker's periodic check is the safety net, e.g. with event_triggers off).
CREATE FUNCTION connbudget.watch_extension_drop() RETURNS event_trigger
    AS 'MODULE_PATHNAME', 'connbudget_watch_extension_drop' LANGUAGE C
    SET search_path = pg_catalog, pg_temp;
CREATE EVENT TRIGGER connbudget_extension_drop ON ddl_command_start
    WHEN TAG IN ('DROP EXTENSION') EXECUTE FUNCTION connbudget.watch_extension_drop();

-- One row per configured budget (in match order), then "default" and "exempt". Counters
-- are cumulative since stats_reset and survive a clean restart.
CREATE FUNCTION connbudget.status(
    OUT budget text, OUT max_connections integer, OUT reserved integer, OUT on_full text,
    OUT mode text, OUT active integer, OUT waiting integer, OUT peak integer,
    OUT admitted bigint, OUT rejected bigint, OUT queued bigint, OUT timed_out bigint,
    OUT abandoned bigint, OUT avg_wait_ms double precision, OUT max_wait_ms double precision,
    OUT stats_reset timestamptz, OUT reserved_in_use integer, OUT reserved_cut integer,
    OUT server_free integer, OUT priority integer,
    OUT rejected_full bigint, OUT rejected_queue_full bigint, OUT rejected_reserved bigint,
    OUT rejected_paused bigint, OUT terminated bigint, OUT would_reject bigint,
    OUT would_queue bigint, OUT waits bigint, OUT wait_total_ms double precision,
    OUT peak_at timestamptz, OUT last_refusal_at timestamptz, OUT paused boolean,
    OUT rejected_server_full bigint, OUT reclaimed bigint, OUT mismatched bigint)
RETURNS SETOF record AS 'MODULE_PATHNAME', 'connbudget_status' LANGUAGE C STRICT VOLATILE;
CREATE VIEW connbudget.status AS SELECT * FROM connbudget.status();

-- Per budget, how many logins admitted after waiting waited up to le_ms (each bucket's own
-- count; the last bucket is 'Infinity').
CREATE FUNCTION connbudget.wait_histogram(
    OUT budget text, OUT le_ms double precision, OUT waits bigint)
RETURNS SETOF record AS 'MODULE_PATHNAME', 'connbudget_wait_histogram' LANGUAGE C STRICT VOLATILE;
CREATE VIEW connbudget.wait_histogram AS SELECT * FROM connbudget.wait_histogram();

-- One row per counted session ('active') or queued login ('waiting').
CREATE FUNCTION connbudget.sessions(
    OUT pid integer, OUT budget text, OUT state text, OUT application_name text,
    OUT role_name text, OUT database_name text, OUT client_addr inet, OUT since timestamptz,
    OUT waited_ms double precision, OUT queue_position integer)
RETURNS SETOF record AS 'MODULE_PATHNAME', 'connbudget_sessions' LANGUAGE C STRICT VOLATILE;
CREATE VIEW connbudget.sessions AS SELECT * FROM connbudget.sessions();

-- The background worker and the configuration it keeps live; the shared memory the
-- extension takes (in all, per budget of connbudget.max_budgets, per session) and the
-- match index of the live budgets (its application_name and address shapes, and how many
-- budgets it cannot index: every login looks at those; NULL while no index is live).
CREATE FUNCTION connbudget.worker(
    OUT pid integer, OUT database text, OUT generation bigint, OUT budgets integer,
    OUT loaded_at timestamptz, OUT checked_at timestamptz, OUT last_error text,
    OUT last_error_at timestamptz, OUT capacity integer, OUT reservation_shortfall integer,
    OUT shared_memory_bytes bigint, OUT bytes_per_budget integer, OUT bytes_per_session integer,
    OUT index_shapes integer, OUT unindexed_budgets integer)
RETURNS SETOF record AS 'MODULE_PATHNAME', 'connbudget_worker' LANGUAGE C STRICT VOLATILE;
CREATE VIEW connbudget.worker AS SELECT * FROM connbudget.worker();

-- Latencies measured inside the extension, per login: 'login_checks' (reading the role,
-- and PostgreSQL's own checks of role and database, made before anything is booked),
-- 'admission' (classifying, deciding and booking) and 'handoff' (a freed slot handed to a
-- queued login -> that login runs).
CREATE FUNCTION connbudget.latency(
    OUT measure text, OUT count bigint, OUT mean_us double precision, OUT p50_us double precision,
    OUT p99_us double precision, OUT max_us double precision, OUT since timestamptz)
RETURNS SETOF record AS 'MODULE_PATHNAME', 'connbudget_latency' LANGUAGE C STRICT VOLATILE;
CREATE VIEW connbudget.latency AS SELECT * FROM connbudget.latency();

-- Samples of every budget, oldest first: one row per budget every connbudget.sample_interval
-- with its active and waiting logins and what its counters gained since its previous row
-- (at most connbudget.history_size rows; the oldest are overwritten).
CREATE FUNCTION connbudget.history(
    OUT sampled_at timestamptz, OUT budget text, OUT max_connections integer, OUT active integer,
    OUT waiting integer, OUT admitted bigint, OUT rejected bigint, OUT queued bigint,
    OUT timed_out bigint, OUT abandoned bigint, OUT reclaimed bigint, OUT mismatched bigint)
RETURNS SETOF record AS 'MODULE_PATHNAME', 'connbudget_history' LANGUAGE C STRICT VOLATILE;
CREATE VIEW connbudget.history AS SELECT * FROM connbudget.history();

CREATE FUNCTION connbudget.match(application_name text, role_name text, database_name text,
                                 client_addr inet DEFAULT NULL)
RETURNS text AS 'MODULE_PATHNAME', 'connbudget_match' LANGUAGE C STABLE;

-- What such a login would get now, why, and the numbers behind it.
CREATE FUNCTION connbudget.explain(application_name text, role_name text, database_name text,
                                   client_addr inet DEFAULT NULL,
    OUT budget text, OUT verdict text, OUT reason text, OUT active integer, OUT waiting integer,
    OUT max_connections integer, OUT reserved integer, OUT server_capacity integer,
    OUT server_in_use integer, OUT reserved_for_others integer)
RETURNS SETOF record AS 'MODULE_PATHNAME', 'connbudget_explain' LANGUAGE C VOLATILE ROWS 1;

CREATE FUNCTION connbudget.reload() RETURNS bigint
    AS 'MODULE_PATHNAME', 'connbudget_reload' LANGUAGE C VOLATILE;

CREATE FUNCTION connbudget.reset_stats(budget text DEFAULT NULL) RETURNS void
    AS 'MODULE_PATHNAME', 'connbudget_reset_stats' LANGUAGE C VOLATILE;

-- Incidents: ends the sessions a budget holds beyond its max_connections, longest idle
-- first, never one inside a transaction unless asked; one row per session ended.
CREATE FUNCTION connbudget.terminate_excess(budget text, include_in_transaction boolean DEFAULT false,
    OUT pid integer, OUT state text, OUT state_change timestamptz, OUT application_name text,
    OUT role_name text, OUT database_name text, OUT client_addr inet, OUT backend_start timestamptz)
RETURNS SETOF record AS 'MODULE_PATHNAME', 'connbudget_terminate_excess' LANGUAGE C STRICT VOLATILE
    ROWS 10 SET search_path = pg_catalog, pg_temp;

-- New logins of a paused budget wait (or are refused, if it rejects) until it
-- is resumed; its sessions are not touched. Both return whether the budget was paused before.
CREATE FUNCTION connbudget.pause(budget text) RETURNS boolean
    AS 'MODULE_PATHNAME', 'connbudget_pause' LANGUAGE C STRICT VOLATILE;
CREATE FUNCTION connbudget.resume(budget text) RETURNS boolean
    AS 'MODULE_PATHNAME', 'connbudget_resume' LANGUAGE C STRICT VOLATILE;

-- Privileges: monitoring for pg_monitor, changes for superusers (or whom they grant).
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA connbudget FROM PUBLIC;
GRANT USAGE ON SCHEMA connbudget TO pg_monitor;
GRANT SELECT ON connbudget.budgets, connbudget.status, connbudget.wait_histogram, connbudget.sessions,
                connbudget.worker, connbudget.latency TO pg_monitor;
GRANT EXECUTE ON FUNCTION connbudget.status(), connbudget.wait_histogram(), connbudget.sessions(), connbudget.worker(),
                          connbudget.latency(), connbudget.match(text, text, text, inet),
                          connbudget.explain(text, text, text, inet)
    TO pg_monitor;
GRANT SELECT ON connbudget.history TO pg_monitor;
GRANT EXECUTE ON FUNCTION connbudget.history() TO pg_monitor;
